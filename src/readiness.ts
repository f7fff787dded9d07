/**
 * The verdict behind GET /ready: 503 for good once a drain has started (reason `draining`, then `drained` once it
 * is over); before that 200, or, with DRAIN_READINESS_UPSTREAM, whatever the app's own readiness endpoint says
 * (2xx within a short timeout).
 */
import { type Clock, deadline } from './clock.ts'
import type { DrainState } from './drain.ts'
import { UpstreamError, describeError } from './errors.ts'
import type { Fetch } from './transport.ts'

export type ReadinessVerdict = { ready: boolean; reason: string }

export function createReadinessCheck(deps: {
  state: () => DrainState
  upstream: string | undefined
  fetch: Fetch
  clock: Clock
  timeoutMs: number
}) {
  // The reason is the drain's own state word, so it never says 'draining' for a drain that is over.
  const notServing = (): ReadinessVerdict | undefined => {
    const state = deps.state()
    return state === 'serving' ? undefined : { ready: false, reason: state }
  }
  return async function check(signal?: AbortSignal): Promise<ReadinessVerdict> {
    const draining = notServing()
    if (draining) return draining
    if (deps.upstream === undefined) return { ready: true, reason: 'serving' }
    const timeout = deadline(
      deps.clock,
      deps.timeoutMs,
      new UpstreamError(`readiness upstream: GET ${deps.upstream}`, { message: `no answer within ${deps.timeoutMs}ms` }),
      signal,
    )
    try {
      const response = await deps.fetch(deps.upstream, { signal: timeout.signal })
      await response.body?.cancel().catch(() => {})
      // A drain may have started while we waited: it wins.
      const since = notServing()
      if (since) return since
      return response.ok ? { ready: true, reason: 'upstream ready' } : { ready: false, reason: `upstream answered ${response.status}` }
    } catch (error) {
      return {
        ready: false,
        reason: timeout.signal.aborted ? describeError(timeout.signal.reason) : `upstream unreachable: ${describeError(error)}`,
      }
    } finally {
      timeout.cancel()
    }
  }
}
