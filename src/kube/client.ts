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
import { DEFAULT_REQUEST_TIMEOUT_MS, errorFromResponse, kubeRequest } from './request.ts'
import type { EndpointSlice, EndpointSliceList, WatchEvent } from './types.ts'
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

const DEFAULT_PAGE_SIZE = 500

/** The EndpointSlice collection of one namespace. */
export const endpointSlicesUrl = (apiUrl: string, namespace: string) => `${apiUrl}/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`

export function createKubeClient(deps: KubeClientDeps): KubeClient {
  const { apiUrl, namespace, fetch, token, clock, userAgent } = deps
  const requestTimeoutMs = deps.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  const pageSize = deps.pageSize ?? DEFAULT_PAGE_SIZE
  const base = endpointSlicesUrl(apiUrl, namespace)
  const requestDeps = { fetch, token, clock, userAgent, timeoutMs: requestTimeoutMs }

  /** One request; resolves with a 2xx response (and the timer to free once its body is read), else throws. */
  async function send(verb: KubeVerb, url: string, signal: AbortSignal): Promise<{ response: Response; done: () => void; signal: AbortSignal }> {
    const what = `${verb.toUpperCase()} ${url}`
    const answer = await kubeRequest(requestDeps, { method: 'GET', url, signal, onAnswer: (code) => deps.onRequest?.(verb, code) })
    if (answer.response.ok) return answer
    try {
      throw await errorFromResponse(what, answer.response, clock.wallTime().getTime())
    } finally {
      answer.done()
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
          const answer = await send('list', url, signal)
          try {
            list = await readJson<EndpointSliceList>(`LIST ${url}`, answer.response, answer.signal)
          } finally {
            answer.done()
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

/** A watch ERROR event's Status as an error; code 410 (reason Expired or Gone) means: list again. */
export function isExpired(error: unknown): boolean {
  return error instanceof UpstreamError && (error.status === 410 || error.reason === 'Expired' || error.reason === 'Gone')
}

/**
 * The body as JSON. A connection lost while reading (a reset mid-response), a body the timeout or the caller cut
 * short (`signal`, which says why), and a body that arrived whole but is not JSON are different faults, and the log
 * must say which one happened.
 */
async function readJson<T>(what: string, response: Response, signal: AbortSignal): Promise<T> {
  let text: string
  try {
    text = await response.text()
  } catch (error) {
    if (signal.aborted) throw signal.reason
    throw new UpstreamError(what, { status: response.status, message: `connection lost while reading the body (${describeError(error)})` }, { cause: error })
  }
  try {
    return JSON.parse(text) as T
  } catch (error) {
    throw new UpstreamError(what, { status: response.status, message: `body is not JSON (${describeError(error)})` }, { cause: error })
  }
}
