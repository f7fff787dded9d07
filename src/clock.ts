/**
 * Time as a dependency. Everything that waits takes a Clock, so tests drive the drain with a fake one; only
 * this file and main.ts touch real timers.
 */
import { setTimeout as delay } from 'node:timers/promises'

export interface Clock {
  /** Milliseconds on a monotonic scale; only differences are meaningful. */
  now(): number
  /** Wall-clock time, for log lines and summaries. */
  wallTime(): Date
  /** Resolves after `ms`, or rejects with `signal.reason` if the signal aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallTime: () => new Date(),
  // timers/promises rejects with its own AbortError (the reason only as `cause`); the contract is the reason itself,
  // which is how the drain tells a phase cut short by the deadline from one that failed.
  sleep: (ms, signal) =>
    delay(Math.max(0, ms), undefined, signal ? { signal } : undefined).catch((error: unknown) => {
      throw signal?.aborted ? signal.reason : error
    }),
}

/**
 * An AbortSignal that aborts after `ms` on the given clock, with `reason`. Also aborts when `parent` does.
 * (Never AbortSignal.timeout: it ignores fake clocks.) Call `cancel` to free the timer early.
 */
export function deadline(
  clock: Clock,
  ms: number,
  reason: unknown,
  parent?: AbortSignal,
): { signal: AbortSignal; cancel: () => void } {
  const controller = new AbortController()
  const stop = new AbortController()
  const onParentAbort = () => controller.abort(parent?.reason)
  if (parent?.aborted) controller.abort(parent.reason)
  parent?.addEventListener('abort', onParentAbort, { once: true })
  clock.sleep(ms, stop.signal).then(
    () => controller.abort(reason),
    () => {},
  )
  return {
    signal: controller.signal,
    cancel: () => {
      stop.abort()
      parent?.removeEventListener('abort', onParentAbort)
    },
  }
}

/** Sleeps, but resolves false instead of throwing when the signal aborts. */
export async function sleepUnlessAborted(clock: Clock, ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await clock.sleep(ms, signal)
    return true
  } catch {
    return false
  }
}
