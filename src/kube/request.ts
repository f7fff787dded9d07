/**
 * One authenticated request to the Kubernetes API, shared by the EndpointSlice client and the start-up access
 * check: bearer token from the token source (re-read and the request repeated once after a 401, as client-go
 * does), our User-Agent, a timeout for the answer, and Status bodies turned into errors that say what failed.
 */
import { type Clock, deadline } from '../clock.ts'
import { UpstreamError, describeError } from '../errors.ts'
import type { Fetch } from '../transport.ts'
import { readTextPrefix } from '../bounded-body.ts'
import { MAX_SMALL_BODY_BYTES } from './limits.ts'
import { decodeStatus } from './schema.ts'
import type { TokenSource } from './token.ts'
import type { Status } from './types.ts'

export type KubeRequestDeps = {
  fetch: Fetch
  token: TokenSource
  clock: Clock
  userAgent: string
  /** Bound on the answer (headers), and on the body until `done()` is called; default DEFAULT_REQUEST_TIMEOUT_MS. */
  timeoutMs?: number
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000

export type KubeRequest = {
  method: 'GET' | 'POST'
  url: string
  /** A JSON body. */
  body?: string
  /** The caller's signal: it keeps governing the response body after the answer timer is freed. */
  signal?: AbortSignal
  /** Each answer's status, or 'error' when none came (for the requests counter). */
  onAnswer?: (code: number | 'error') => void
}

/**
 * Resolves with the response, whatever its status but a redirect; `done()` frees the answer timer, which otherwise
 * also bounds reading the body. Rejects when no answer came (the caller's signal's reason, the timeout's
 * UpstreamError, or an UpstreamError naming the request) and on a redirect: the API server has no reason to send
 * one, and following it could take the bearer token, or the trusted answer, to another host or to plain http.
 */
export async function kubeRequest(
  deps: KubeRequestDeps,
  request: KubeRequest,
): Promise<{ response: Response; done: () => void; signal: AbortSignal }> {
  const what = `${request.method} ${request.url}`
  const timeoutMs = deps.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  for (let attempt = 1; ; attempt++) {
    const bearer = await deps.token.get()
    // identity: a compressed body's size says nothing of what it inflates to (the body readers bound it anyway).
    const headers: Record<string, string> = { accept: 'application/json', 'accept-encoding': 'identity', 'user-agent': deps.userAgent }
    if (request.body !== undefined) headers['content-type'] = 'application/json'
    if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`
    // Combined with the caller's signal rather than chained to it: a watch body outlives the timer by design.
    const timeout = deadline(deps.clock, timeoutMs, new UpstreamError(what, { message: `no answer within ${timeoutMs}ms` }))
    const signal = request.signal === undefined ? timeout.signal : AbortSignal.any([request.signal, timeout.signal])
    let response: Response
    try {
      response = await deps.fetch(request.url, {
        method: request.method,
        headers,
        signal,
        redirect: 'manual',
        ...(request.body === undefined ? {} : { body: request.body }),
      })
    } catch (error) {
      timeout.cancel()
      // Our own caller gave up (the drain ended): not something the API server did, so not counted as its error.
      if (request.signal?.aborted) throw request.signal.reason
      request.onAnswer?.('error')
      if (timeout.signal.aborted) throw timeout.signal.reason
      throw new UpstreamError(what, { message: describeError(error) }, { cause: error })
    }
    request.onAnswer?.(response.status)
    if (response.status >= 300 && response.status < 400) {
      timeout.cancel()
      await response.body?.cancel().catch(() => {})
      const location = (response.headers.get('location') ?? '').slice(0, 200)
      throw new UpstreamError(what, {
        status: response.status,
        message: `redirect to ${JSON.stringify(location)} refused: the API server is never expected to redirect, and redirects are not followed`,
      })
    }
    if (response.status === 401 && attempt === 1) {
      timeout.cancel()
      await response.body?.cancel().catch(() => {})
      deps.token.invalidate()
      continue
    }
    // `signal` aborts with the reason that cut a body short: the caller's, or the timeout's.
    return { response, done: timeout.cancel, signal }
  }
}

/** The error a non-2xx answer stands for: the Status's message and reason, or the plain-text body (APF's 429). */
export async function errorFromResponse(what: string, response: Response, nowMs: number): Promise<UpstreamError> {
  const text = await readTextPrefix(response, MAX_SMALL_BODY_BYTES)
  let status: Status | undefined
  try {
    status = decodeStatus(JSON.parse(text))
  } catch {
    // Not a Status: APF's 429 and proxies answer in plain text.
  }
  const retryAfterMs =
    parseRetryAfter(response.headers.get('retry-after'), nowMs) ??
    (status?.details?.retryAfterSeconds ? Math.min(60, status.details.retryAfterSeconds) * 1_000 : undefined)
  return new UpstreamError(what, {
    status: response.status,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    ...(typeof status?.reason === 'string' ? { reason: status.reason } : {}),
    message: (status?.message ?? text.trim()).slice(0, 300),
  })
}

/** Retry-After in seconds (what the API server sends); HTTP dates are accepted too. Capped at a minute. */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null || value.trim() === '') return undefined
  const seconds = /^\d+$/.test(value.trim()) ? Number(value.trim()) : (Date.parse(value) - nowMs) / 1_000
  if (!Number.isFinite(seconds)) return undefined
  return Math.min(60, Math.max(0, seconds)) * 1_000
}
