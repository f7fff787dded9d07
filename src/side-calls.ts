/**
 * The two best-effort calls a drain makes before the endpoint wait: POST the app's shutdown URL (so the app
 * flips its own readiness), and ask Envoy to drain its inbound listeners gracefully. Graceful matters: Envoy
 * keeps accepting while it tells clients to go away; a plain drain would refuse connections that still arrive
 * before the endpoint is removed. Each call is bounded; failure is reported, never thrown past the drain.
 */
import { readTextPrefix } from './bounded-body.ts'
import { UpstreamError, describeError } from './errors.ts'
import type { Fetch } from './transport.ts'

/** Envoy's admin parameters are presence-only: `graceful=false` would still mean graceful, so send bare names. */
export const ENVOY_DRAIN_PATH = '/drain_listeners?inboundonly&graceful'

export function envoyDrainUrl(adminUrl: string): string {
  return `${adminUrl.replace(/\/+$/, '')}${ENVOY_DRAIN_PATH}`
}

/** What is read of a side call's answer: its first bytes make the error message; the rest is dropped. */
const MAX_ANSWER_PREFIX_BYTES = 4 * 1024

/** POSTs with no body and expects 2xx; throws an UpstreamError naming the target, the URL and the status. */
export async function postExpectingSuccess(fetch: Fetch, what: string, url: string, signal: AbortSignal): Promise<number> {
  let response: Response
  try {
    response = await fetch(url, { method: 'POST', signal })
  } catch (error) {
    if (signal.aborted && signal.reason instanceof Error) throw signal.reason
    throw new UpstreamError(`${what}: POST ${url}`, { message: describeError(error) }, { cause: error })
  }
  // Only the start of the answer, for an error message: a peer that answers without end cannot fill the memory.
  const body = await readTextPrefix(response, MAX_ANSWER_PREFIX_BYTES)
  if (!response.ok) throw new UpstreamError(`${what}: POST ${url}`, { status: response.status, message: body.trim().slice(0, 200) })
  return response.status
}
