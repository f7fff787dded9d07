/**
 * The drain's deadline: DRAIN_TIMEOUT from the start, brought forward when the pod's own grace budget is shorter.
 * The kubelet SIGKILLs the pod when its grace period, started as it began stopping the pod (which is when it calls
 * the hook, or signals a classic sidecar: the drain's start), runs out; the hold must end DRAIN_APP_RESERVE before
 * that, so the app has that long for its own shutdown after SIGTERM. The grace period is counted on this process's
 * own clock from the drain's start, never by comparing the API server's deletionTimestamp with this node's wall
 * clock: a node clock running ahead would shrink the hold, to nothing at 20 s of skew. The timestamp is used only
 * when the pod shows no deletionGracePeriodSeconds. Learning the budget takes an API call, so the drain starts on
 * DRAIN_TIMEOUT and the deadline moves earlier (never later) once the answer comes.
 */
import { type Clock, deadline } from './clock.ts'
import { DrainCoordinatorError } from './errors.ts'

export type DeadlineSource = 'DRAIN_TIMEOUT' | 'grace budget'

export type AppliedDeadline = {
  source: DeadlineSource
  /** From the start of the drain to the deadline. */
  seconds: number
  /** When the kubelet's SIGKILL is due, on this node's clock, when the pod was read. */
  killAt?: string
}

/** What the pod's own object says of its deletion. */
export type PodDeletion = { deletionTimestamp: Date; gracePeriodSeconds?: number | undefined }

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
    /** Applies the pod's grace budget: the deadline moves earlier if the budget is shorter. */
    applyBudget(deletion: PodDeletion, reserveMs: number): AppliedDeadline {
      const killAtMs =
        deletion.gracePeriodSeconds === undefined ? deletion.deletionTimestamp.getTime() : startedWall + deletion.gracePeriodSeconds * 1_000
      const killAt = new Date(killAtMs).toISOString()
      const holdMs = budgetedHoldMs({ startedAtMs: startedWall, killAtMs, reserveMs, timeoutMs })
      if (holdMs < timeoutMs && !controller.signal.aborted) {
        applied = { source: 'grace budget', seconds: holdMs / 1_000, killAt }
        arm(Math.max(0, holdMs - (clock.now() - startedAt)), new DrainDeadlineError(holdMs, 'grace budget'))
      } else applied = { ...applied, killAt }
      return applied
    },
    cancel() {
      for (const timer of timers) timer.cancel()
    },
  }
}
