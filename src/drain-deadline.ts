/**
 * The drain's deadline: DRAIN_TIMEOUT from the start, brought forward when the pod's own grace budget is shorter.
 * The kubelet SIGKILLs the pod at metadata.deletionTimestamp; the hold must end DRAIN_APP_RESERVE before that, so
 * the app has that long for its own shutdown after SIGTERM. Learning the budget takes an API call, so the drain
 * starts on DRAIN_TIMEOUT and the deadline moves earlier (never later) once the answer comes.
 */
import { type Clock, deadline } from './clock.ts'
import { DrainCoordinatorError } from './errors.ts'

export type DeadlineSource = 'DRAIN_TIMEOUT' | 'grace budget'

export type AppliedDeadline = {
  source: DeadlineSource
  /** From the start of the drain to the deadline. */
  seconds: number
  /** The pod's deletionTimestamp, when known. */
  killAt?: string
}

export class DrainDeadlineError extends DrainCoordinatorError {
  override name = 'DrainDeadlineError'
  constructor(timeoutMs: number, source: DeadlineSource = 'DRAIN_TIMEOUT') {
    super(
      'DRAIN_DEADLINE',
      source === 'DRAIN_TIMEOUT'
        ? `DRAIN_TIMEOUT (${timeoutMs}ms) reached`
        : `the pod's grace budget (${timeoutMs}ms of hold, DRAIN_APP_RESERVE left for the app) reached`,
    )
  }
}

/**
 * How long a drain that started at `startedAtMs` (wall clock) may hold so that `reserveMs` is left before
 * `killAtMs`; never negative, never more than `timeoutMs`. Pure.
 */
export function budgetedHoldMs({
  startedAtMs,
  killAtMs,
  reserveMs,
  timeoutMs,
}: {
  startedAtMs: number
  killAtMs: number
  reserveMs: number
  timeoutMs: number
}): number {
  return Math.max(0, Math.min(timeoutMs, killAtMs - reserveMs - startedAtMs))
}

export function createDrainDeadline(clock: Clock, timeoutMs: number) {
  const controller = new AbortController()
  const startedAt = clock.now()
  const startedWall = clock.wallTime().getTime()
  const timers: Array<{ cancel: () => void }> = []
  let applied: AppliedDeadline = { source: 'DRAIN_TIMEOUT', seconds: timeoutMs / 1_000 }

  const arm = (ms: number, reason: Error) => {
    const timer = deadline(clock, ms, reason)
    timer.signal.addEventListener('abort', () => controller.abort(timer.signal.reason), { once: true })
    timers.push(timer)
  }
  arm(timeoutMs, new DrainDeadlineError(timeoutMs))

  return {
    signal: controller.signal,
    get applied(): AppliedDeadline {
      return applied
    },
    /** Applies the pod's deletionTimestamp: the deadline moves earlier if the budget is shorter. */
    applyBudget(killAt: Date, reserveMs: number): AppliedDeadline {
      const holdMs = budgetedHoldMs({ startedAtMs: startedWall, killAtMs: killAt.getTime(), reserveMs, timeoutMs })
      if (holdMs < timeoutMs && !controller.signal.aborted) {
        applied = { source: 'grace budget', seconds: holdMs / 1_000, killAt: killAt.toISOString() }
        arm(Math.max(0, holdMs - (clock.now() - startedAt)), new DrainDeadlineError(holdMs, 'grace budget'))
      } else applied = { ...applied, killAt: killAt.toISOString() }
      return applied
    },
    cancel() {
      for (const timer of timers) timer.cancel()
    },
  }
}
