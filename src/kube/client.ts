/**
 * A minimal Kubernetes API client for EndpointSlices in one namespace: a paginated LIST and a streaming WATCH.
 * Behaves like client-go where it matters: bearer token re-read after a 401, Retry-After honoured (reported to
 * the caller), every request bounded by a timeout and tagged with our User-Agent, Status bodies decoded, plain
 * text error bodies (APF's 429) accepted.
 */
import { type Clock, deadline } from '../clock.ts'
import { DrainCoordinatorError, UpstreamError, describeError } from '../errors.ts'
import type { Fetch } from '../transport.ts'
import { readBoundedText } from './body.ts'
import { DEFAULT_PAGE_SIZE, KubeLimitError, MAX_KEPT_SLICES, MAX_LIST_BYTES, MAX_LIST_PAGES, MAX_PAGE_BYTES } from './limits.ts'
import { DEFAULT_REQUEST_TIMEOUT_MS, errorFromResponse, kubeRequest } from './request.ts'
import { type Decoded, BookmarkSchema, ListEnvelopeSchema, decodeSlice, decodeStatus, describeIssues } from './schema.ts'
import type { TokenSource } from './token.ts'
import type { EndpointSlice, InvalidObjectKind, KubeVerb, SliceEvent, WatchEvent } from './types.ts'
import { decodeWatchStream } from './watch-stream.ts'
import * as v from 'valibot'

export type ListResult<T = EndpointSlice> = { resourceVersion: string; items: T[] }

export interface KubeClient {
  /**
   * LIST every page. Without `select`, every item must pass validation (else KubeInvalidObjectError). With it,
   * each item, valid or not, is handed to `select` and only what it returns is held, page by page, so memory
   * stays bounded by one page however many slices the namespace has.
   */
  listEndpointSlices<T = EndpointSlice>(
    options: { labelSelector?: string | undefined; select?: (item: Decoded<EndpointSlice>) => T | undefined },
    signal: AbortSignal,
  ): Promise<ListResult<T>>
  /**
   * WATCH from a resourceVersion; the iterator ends when the server closes the stream. With `idleTimeoutMs`, a
   * stream that delivers no bytes (no event, no bookmark) for that long is abandoned with a WatchIdleError.
   * Events are validated: an invalid slice with a readable name is an INVALID event; anything else that fails
   * (an ERROR event, an event without a readable name, a bad bookmark) ends the iterator with an error.
   */
  watchEndpointSlices(
    options: {
      resourceVersion: string
      labelSelector?: string | undefined
      fieldSelector?: string | undefined
      timeoutSeconds?: number
      idleTimeoutMs?: number
    },
    signal: AbortSignal,
  ): AsyncIterable<SliceEvent>
}

/** An API object failed validation and cannot be tied to a slice by name: the request counts as failed. */
export class KubeInvalidObjectError extends DrainCoordinatorError {
  override name = 'KubeInvalidObjectError'
  constructor(what: string, problem: string) {
    super('KUBE_INVALID_OBJECT', `${what}: ${problem}`)
  }
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
  /** Called for every object that fails validation (drain_coordinator_kube_invalid_objects_total). */
  onInvalidObject?: (kind: InvalidObjectKind) => void
  /** Bound on a LIST page (headers and body) and on the wait for a WATCH's headers. */
  requestTimeoutMs?: number
  pageSize?: number
}

/** The EndpointSlice collection of one namespace. */
export const endpointSlicesUrl = (apiUrl: string, namespace: string) =>
  `${apiUrl}/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`

export function createKubeClient(deps: KubeClientDeps): KubeClient {
  const { apiUrl, namespace, fetch, token, clock, userAgent } = deps
  const requestTimeoutMs = deps.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  const pageSize = deps.pageSize ?? DEFAULT_PAGE_SIZE
  const base = endpointSlicesUrl(apiUrl, namespace)
  const requestDeps = { fetch, token, clock, userAgent, timeoutMs: requestTimeoutMs }

  /** One request; resolves with a 2xx response (and the timer to free once its body is read), else throws. */
  async function send(
    verb: KubeVerb,
    url: string,
    signal: AbortSignal,
  ): Promise<{ response: Response; done: () => void; signal: AbortSignal }> {
    const what = `${verb.toUpperCase()} ${url}`
    const answer = await kubeRequest(requestDeps, { method: 'GET', url, signal, onAnswer: (code) => deps.onRequest?.(verb, code) })
    if (answer.response.ok) return answer
    try {
      throw await errorFromResponse(what, answer.response, clock.wallTime().getTime())
    } finally {
      answer.done()
    }
  }

  const invalid = (kind: InvalidObjectKind, what: string, problem: string) => {
    deps.onInvalidObject?.(kind)
    return new KubeInvalidObjectError(what, problem)
  }

  /** One page: its envelope validated, its items decoded one by one. */
  async function listPage(url: string, signal: AbortSignal) {
    const answer = await send('list', url, signal)
    let text: string
    try {
      text = await readBoundedText(`LIST ${url}`, answer.response, MAX_PAGE_BYTES, 'MAX_PAGE_BYTES (one LIST page)', answer.signal)
    } finally {
      answer.done()
    }
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch (error) {
      throw new UpstreamError(
        `LIST ${url}`,
        { status: answer.response.status, message: `body is not JSON (${(error as Error).message.slice(0, 200)})` },
        { cause: error },
      )
    }
    const envelope = v.safeParse(ListEnvelopeSchema, body)
    if (!envelope.success) throw invalid('list', `LIST ${url}`, `not an EndpointSliceList: ${describeIssues(envelope.issues)}`)
    return { bytes: Buffer.byteLength(text), envelope: envelope.output }
  }

  async function listEndpointSlices<T>(
    { labelSelector, select }: { labelSelector?: string | undefined; select?: (item: Decoded<EndpointSlice>) => T | undefined },
    signal: AbortSignal,
  ): Promise<ListResult<T>> {
    const items: T[] = []
    let continueToken: string | undefined
    let restarts = 0
    let pages = 0
    let bytes = 0
    let limit = pageSize
    for (;;) {
      const query = new URLSearchParams({ limit: String(limit) })
      if (labelSelector) query.set('labelSelector', labelSelector)
      if (continueToken) query.set('continue', continueToken)
      const url = `${base}?${query}`
      if (++pages > MAX_LIST_PAGES) throw new KubeLimitError(`LIST ${base}`, 'MAX_LIST_PAGES (pages of one LIST)', MAX_LIST_PAGES, 'pages')
      let page: Awaited<ReturnType<typeof listPage>>
      try {
        page = await listPage(url, signal)
      } catch (error) {
        // An expired continue token: the pages so far are from a compacted revision; start over, as client-go does.
        if (error instanceof UpstreamError && error.status === 410 && continueToken !== undefined && restarts++ < 2) {
          items.length = 0
          continueToken = undefined
          continue
        }
        // A page too big to read whole: ask for the same page with fewer slices (slices of 1000 endpoints).
        if (error instanceof KubeLimitError && error.bound.startsWith('MAX_PAGE_BYTES') && limit > 1) {
          limit = Math.max(1, Math.floor(limit / 2))
          continue
        }
        throw error
      }
      bytes += page.bytes
      if (bytes > MAX_LIST_BYTES) throw new KubeLimitError(`LIST ${base}`, 'MAX_LIST_BYTES (all pages of one LIST)', MAX_LIST_BYTES)
      for (const item of page.envelope.items) {
        const decoded = decodeSlice(item)
        if (!decoded.ok) deps.onInvalidObject?.('endpointslice')
        if (select === undefined) {
          if (!decoded.ok)
            throw new KubeInvalidObjectError(`LIST ${url}`, `item ${decoded.invalid.name ?? '(no name)'}: ${decoded.invalid.problem}`)
          items.push(decoded.value as T)
          continue
        }
        const kept = select(decoded)
        if (kept === undefined) continue
        items.push(kept)
        if (items.length > MAX_KEPT_SLICES)
          throw new KubeLimitError(`LIST ${base}`, 'MAX_KEPT_SLICES (slices naming this pod)', MAX_KEPT_SLICES, 'slices')
      }
      continueToken = page.envelope.metadata.continue || undefined
      if (continueToken === undefined) return { resourceVersion: page.envelope.metadata.resourceVersion, items }
    }
  }

  return {
    listEndpointSlices,

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
      const what = `WATCH ${url}`
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
        for await (const event of decodeWatchStream(watched())) yield sliceEventOf(event, what, deps.onInvalidObject)
      } catch (error) {
        if (signal.aborted) throw signal.reason
        if (idle.signal.aborted) throw idle.signal.reason
        if (error instanceof DrainCoordinatorError) throw error
        throw new UpstreamError(
          what,
          { status: response.status, message: `stream broke: ${describeError(error).slice(0, 300)}` },
          { cause: error },
        )
      } finally {
        idleTimer?.cancel()
        // Leaving early (the wait is over) must close the connection, not leave the stream half-read.
        await response.body.cancel().catch(() => {})
      }
    },
  }
}

/**
 * A raw watch event, validated: the event the wait acts on, or an error when it carries nothing to act on (an
 * ERROR event's Status, an invalid event without a readable name, a BOOKMARK without a resourceVersion).
 */
export function sliceEventOf(event: WatchEvent, what: string, onInvalid?: (kind: InvalidObjectKind) => void): SliceEvent {
  const invalid = (kind: InvalidObjectKind, problem: string) => {
    onInvalid?.(kind)
    return new KubeInvalidObjectError(what, problem)
  }
  if (event.type === 'ERROR') {
    const status = decodeStatus(event.object)
    if (status === undefined) throw invalid('status', 'ERROR event whose object is not a Status')
    throw new UpstreamError('WATCH endpointslices', {
      ...(typeof status.code === 'number' ? { status: status.code } : {}),
      ...(typeof status.reason === 'string' ? { reason: status.reason } : {}),
      message: `ERROR event: ${(status.message ?? 'no message').slice(0, 300)}`,
    })
  }
  if (event.type === 'BOOKMARK') {
    const bookmark = v.safeParse(BookmarkSchema, event.object)
    if (!bookmark.success) throw invalid('watch_event', `BOOKMARK without a resourceVersion: ${describeIssues(bookmark.issues)}`)
    return { type: 'BOOKMARK', resourceVersion: bookmark.output.metadata.resourceVersion }
  }
  const decoded = decodeSlice(event.object)
  if (decoded.ok) return { type: event.type, slice: decoded.value, resourceVersion: decoded.value.metadata?.resourceVersion ?? undefined }
  onInvalid?.('endpointslice')
  if (decoded.invalid.name === undefined)
    throw new KubeInvalidObjectError(what, `${event.type} event for a slice without a readable name: ${decoded.invalid.problem}`)
  return {
    type: 'INVALID',
    name: decoded.invalid.name,
    service: decoded.invalid.service,
    problem: `${event.type} event: ${decoded.invalid.problem}`,
    resourceVersion: undefined,
  }
}

/** A watch ERROR event's Status as an error; code 410 (reason Expired or Gone) means: list again. */
export function isExpired(error: unknown): boolean {
  return error instanceof UpstreamError && (error.status === 410 || error.reason === 'Expired' || error.reason === 'Gone')
}
