/**
 * A minimal Kubernetes API client for EndpointSlices in one namespace: a paginated LIST and a streaming WATCH.
 * Behaves like client-go where it matters: bearer token re-read after a 401, Retry-After honoured (reported to
 * the caller), every request bounded by a timeout and tagged with our User-Agent, Status bodies decoded, plain
 * text error bodies (APF's 429) accepted.
 */
import { type Clock, deadline } from '../clock.ts'
import { DrainCoordinatorError, UpstreamError, describeError } from '../errors.ts'
import type { KubeVerb } from '../phases.ts'
import type { Fetch } from '../transport.ts'
import type { TokenSource } from './token.ts'
import type { EndpointSlice, EndpointSliceList, Status, WatchEvent } from './types.ts'
import { decodeWatchStream } from './watch-stream.ts'

export type ListResult = { resourceVersion: string; items: EndpointSlice[] }

export interface KubeClient {
  /**
   * LIST every page. With `keep`, only the items it accepts are held, page by page, so memory stays bounded by
   * one page however many slices the namespace has.
   */
  listEndpointSlices(options: { labelSelector?: string | undefined; keep?: (slice: EndpointSlice) => boolean }, signal: AbortSignal): Promise<ListResult>
  /**
   * WATCH from a resourceVersion; the iterator ends when the server closes the stream. With `idleTimeoutMs`, a
   * stream that delivers no bytes (no event, no bookmark) for that long is abandoned with a WatchIdleError.
   */
  watchEndpointSlices(
    options: { resourceVersion: string; labelSelector?: string | undefined; fieldSelector?: string | undefined; timeoutSeconds?: number; idleTimeoutMs?: number },
    signal: AbortSignal,
  ): AsyncIterable<WatchEvent>
}

/** A watch stream went silent for longer than its idle limit (a stalled connection, or a server without bookmarks). */
export class WatchIdleError extends DrainCoordinatorError {
  override name = 'WatchIdleError'
  constructor(idleMs: number) {
    super('KUBE_WATCH_IDLE', `watch delivered nothing (no event, no bookmark) for ${idleMs}ms`)
  }
}

export type KubeClientDeps = {
  apiUrl: string
  namespace: string
  fetch: Fetch
  token: TokenSource
  clock: Clock
  userAgent: string
  onRequest?: (verb: KubeVerb, code: number | 'error') => void
  /** Bound on a LIST page (headers and body) and on the wait for a WATCH's headers. */
  requestTimeoutMs?: number
  pageSize?: number
}

export const DEFAULT_PAGE_SIZE = 500
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000

export function createKubeClient(deps: KubeClientDeps): KubeClient {
  const { apiUrl, namespace, fetch, token, clock, userAgent } = deps
  const requestTimeoutMs = deps.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  const pageSize = deps.pageSize ?? DEFAULT_PAGE_SIZE
  const base = `${apiUrl}/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`

  /** One request, retried once with a fresh token after a 401. Resolves with an OK response, else throws. */
  async function send(verb: KubeVerb, url: string, signal: AbortSignal): Promise<{ response: Response; done: () => void }> {
    for (let attempt = 1; ; attempt++) {
      const bearer = await token.get()
      // The timer bounds the wait for an answer; the caller's signal must keep governing the body after it (a
      // watch body outlives the timer by design), so the two are combined rather than chained.
      const timeout = deadline(clock, requestTimeoutMs, new UpstreamError(`${verb.toUpperCase()} ${url}`, { message: `no answer within ${requestTimeoutMs}ms` }))
      const headers: Record<string, string> = { accept: 'application/json', 'user-agent': userAgent }
      if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`
      let response: Response
      try {
        response = await fetch(url, { headers, signal: AbortSignal.any([signal, timeout.signal]) })
      } catch (error) {
        timeout.cancel()
        deps.onRequest?.(verb, 'error')
        if (signal.aborted) throw signal.reason
        if (timeout.signal.aborted) throw timeout.signal.reason
        throw new UpstreamError(`${verb.toUpperCase()} ${url}`, { message: describeError(error) }, { cause: error })
      }
      deps.onRequest?.(verb, response.status)
      if (response.ok) return { response, done: timeout.cancel }
      try {
        const error = await errorFrom(verb, url, response, clock.wallTime().getTime())
        if (response.status === 401 && attempt === 1) {
          token.invalidate()
          continue
        }
        throw error
      } finally {
        timeout.cancel()
      }
    }
  }

  return {
    async listEndpointSlices({ labelSelector, keep }, signal) {
      const items: EndpointSlice[] = []
      let continueToken: string | undefined
      let resourceVersion = ''
      let restarts = 0
      for (;;) {
        const query = new URLSearchParams({ limit: String(pageSize) })
        if (labelSelector) query.set('labelSelector', labelSelector)
        if (continueToken) query.set('continue', continueToken)
        const url = `${base}?${query}`
        let list: EndpointSliceList
        try {
          const { response, done } = await send('list', url, signal)
          try {
            list = (await response.json()) as EndpointSliceList
          } catch (error) {
            if (signal.aborted) throw signal.reason
            throw new UpstreamError(`LIST ${url}`, { status: response.status, message: `body is not JSON (${describeError(error)})` }, { cause: error })
          } finally {
            done()
          }
        } catch (error) {
          // An expired continue token: the pages so far are from a compacted revision; start over, as client-go does.
          if (error instanceof UpstreamError && error.status === 410 && continueToken !== undefined && restarts++ < 2) {
            items.length = 0
            continueToken = undefined
            continue
          }
          throw error
        }
        if (typeof list !== 'object' || list === null || (list.items !== null && list.items !== undefined && !Array.isArray(list.items))) {
          throw new UpstreamError(`LIST ${url}`, { status: 200, message: 'body is not an EndpointSliceList' })
        }
        for (const item of list.items ?? []) if (keep === undefined || keep(item)) items.push(item)
        resourceVersion = list.metadata?.resourceVersion ?? resourceVersion
        continueToken = list.metadata?.continue || undefined
        if (continueToken === undefined) return { resourceVersion, items }
      }
    },

    async *watchEndpointSlices({ resourceVersion, labelSelector, fieldSelector, timeoutSeconds = 60, idleTimeoutMs }, signal) {
      const query = new URLSearchParams({
        watch: '1',
        allowWatchBookmarks: 'true',
        resourceVersion,
        timeoutSeconds: String(timeoutSeconds),
      })
      if (labelSelector) query.set('labelSelector', labelSelector)
      if (fieldSelector) query.set('fieldSelector', fieldSelector)
      const url = `${base}?${query}`
      const idle = new AbortController()
      let idleTimer: { cancel: () => void } | undefined
      const armIdleTimer = () => {
        idleTimer?.cancel()
        if (idleTimeoutMs === undefined) return
        const timer = deadline(clock, idleTimeoutMs, undefined)
        timer.signal.addEventListener('abort', () => idle.abort(new WatchIdleError(idleTimeoutMs)), { once: true })
        idleTimer = timer
      }
      const { response, done } = await send('watch', url, AbortSignal.any([signal, idle.signal]))
      done()
      if (!response.body) return
      const body = response.body as AsyncIterable<Uint8Array>
      async function* watched() {
        armIdleTimer()
        for await (const chunk of body) {
          armIdleTimer()
          yield chunk
        }
      }
      try {
        yield* decodeWatchStream(watched())
      } catch (error) {
        if (signal.aborted) throw signal.reason
        if (idle.signal.aborted) throw idle.signal.reason
        throw new UpstreamError(`WATCH ${url}`, { status: response.status, message: `stream broke: ${describeError(error)}` }, { cause: error })
      } finally {
        idleTimer?.cancel()
        // Leaving early (the wait is over) must close the connection, not leave the stream half-read.
        await response.body.cancel().catch(() => {})
      }
    },
  }
}

async function errorFrom(verb: KubeVerb, url: string, response: Response, nowMs: number): Promise<UpstreamError> {
  const text = await response.text().catch(() => '')
  let status: Partial<Status> | undefined
  try {
    const parsed = JSON.parse(text) as Partial<Status>
    if (parsed && parsed.kind === 'Status') status = parsed
  } catch {
    // Not a Status: APF's 429 and proxies answer in plain text.
  }
  const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), nowMs) ??
    (status?.details?.retryAfterSeconds ? status.details.retryAfterSeconds * 1_000 : undefined)
  const message = (status?.message ?? text.trim()).slice(0, 300)
  return new UpstreamError(`${verb.toUpperCase()} ${url}`, {
    status: response.status,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    ...(status?.reason === undefined ? {} : { reason: status.reason }),
    message,
  })
}

/** Retry-After in seconds (what the API server sends); HTTP dates are accepted too. Capped at a minute. */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null || value.trim() === '') return undefined
  const seconds = /^\d+$/.test(value.trim()) ? Number(value.trim()) : (Date.parse(value) - nowMs) / 1_000
  if (!Number.isFinite(seconds)) return undefined
  return Math.min(60, Math.max(0, seconds)) * 1_000
}

/** A watch ERROR event's Status as an error; code 410 (reason Expired or Gone) means: list again. */
export function isExpired(error: unknown): boolean {
  return error instanceof UpstreamError && (error.status === 410 || error.reason === 'Expired' || error.reason === 'Gone')
}
