/**
 * Time as a dependency. Everything that waits takes a Clock, so tests drive the drain with a fake one; only
 * this file and main.ts touch real timers.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale; only differences are meaningful. */
  now(): number
  /** Wall-clock time, for log lines and summaries. */
  wallTime(): Date
  /** Resolves after `ms`, or rejects with `signal.reason` if the signal aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>
}

/** setTimeout's ceiling (2^31 − 1 ms, about 24.8 days): a longer delay would fire after 1 ms instead. */
const MAX_TIMER_MS = 2 ** 31 - 1

export const systemClock: Clock = {
  now: () => performance.now(),
  wallTime: () => new Date(),
  // By hand rather than timers/promises: that rejects with an AbortError of its own (the reason only as `cause`),
  // while the contract is the reason itself, which is how the drain tells a phase cut short by the deadline from
  // one that failed; and it builds an error with a stack trace on every cancelled timer.
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason)
      // Node's timers count whole milliseconds of a loop time that lags performance.now(), so a timer can fire
      // up to a millisecond early on the clock the drain measures with; a settle of 200ms would report 0.199s.
      // Re-arm for whatever is left until `now()` says the time is really up.
      const until = performance.now() + ms
      let timer: ReturnType<typeof setTimeout>
      const onAbort = () => {
        clearTimeout(timer)
        reject(signal!.reason)
      }
      const arm = (left: number) => {
        timer = setTimeout(
          () => {
            const rest = until - performance.now()
            if (rest > 0) return arm(rest)
            signal?.removeEventListener('abort', onAbort)
            resolve()
          },
          Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(left))),
        )
      }
      arm(ms)
      signal?.addEventListener('abort', onAbort, { once: true })
    }),
}

/** The reason a deadline's own timer is stopped with: one shared value, not a new error per cancel. */
const CANCELLED = Symbol('deadline cancelled')

/**
 * An AbortSignal that aborts after `ms` on the given clock, with `reason`. Also aborts when `parent` does.
 * (Never AbortSignal.timeout: it ignores fake clocks.) Call `cancel` to free the timer early.
 */
export function deadline(clock: Clock, ms: number, reason: unknown, parent?: AbortSignal): { signal: AbortSignal; cancel: () => void } {
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
      stop.abort(CANCELLED)
      parent?.removeEventListener('abort', onParentAbort)
    },
  }
}
