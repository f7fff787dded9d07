/**
 * The one retry loop for Kubernetes API calls (the endpoint wait's LISTs and WATCHes, the start-up access
 * check): exponential backoff with jitter on the injected clock, never shorter than the server's Retry-After.
 */
import type { Clock } from '../clock.ts'
import { UpstreamError } from '../errors.ts'

export type BackoffPolicy = {
  baseMs: number
  maxMs: number
  /** [0, 1); default Math.random. Tests pass a constant. */
  random?: () => number
}

/** The API's usual answer to overload: 200 ms doubling to 5 s. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 200, maxMs: 5_000 }

/** The wait before retry number `failures` (1-based): a jittered step between half and all of it, or Retry-After if longer. */
export function backoffMs(policy: BackoffPolicy, failures: number, error?: unknown): number {
  const step = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)))
  const jittered = step * (0.5 + (policy.random ?? Math.random)() / 2)
  return Math.max(jittered, retryAfterOf(error) ?? 0)
}

export const retryAfterOf = (error: unknown): number | undefined => (error instanceof UpstreamError ? error.retryAfterMs : undefined)

export type RetryOptions = {
  clock: Clock
  signal?: AbortSignal | undefined
  policy: BackoffPolicy
  /** Give up after this many failures in a row, throwing the last error; default: never (until the signal aborts). */
  attempts?: number
  /** Told of each failure before the wait: to log it. */
  onFailure?: (error: unknown, failures: number, delayMs: number) => void
  /** The wait before the next try; default backoffMs. */
  delayMs?: (failures: number, error: unknown) => number
}

/**
 * Calls `attempt` until it resolves, the signal aborts (its reason is thrown), or `attempts` failures in a row.
 * `attempt` may call `progress()` when it got somewhere (a watch that delivered events), which restarts the count.
 */
export async function retry<T>(options: RetryOptions, attempt: (progress: () => void) => Promise<T>): Promise<T> {
  let failures = 0
  const progress = () => {
    failures = 0
  }
  for (;;) {
    try {
      return await attempt(progress)
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason
      failures++
      const last = options.attempts !== undefined && failures >= options.attempts
      const delay = last ? 0 : (options.delayMs ?? ((n, e) => backoffMs(options.policy, n, e)))(failures, error)
      options.onFailure?.(error, failures, delay)
      if (last) throw error
      await options.clock.sleep(delay, options.signal)
    }
  }
}
