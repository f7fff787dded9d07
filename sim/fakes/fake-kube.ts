/**
 * A fake Kubernetes API server for EndpointSlices in one namespace, speaking the real wire format over real
 * HTTP(S) (docs/kubernetes-api.md): bearer-token auth with 401 Status bodies, 403 Status for a
 * forbidden verb, paginated LIST (limit/continue, list items without `kind`), streaming WATCH from a
 * resourceVersion (one JSON object per line, events with `kind`), BOOKMARK events, a too-old resourceVersion
 * answered with HTTP 200 and an ERROR event holding a 410 Status (a LIST with an expired continue token gets a
 * real HTTP 410), and APF-style plain-text 429s. Faults can be queued for the next matching request.
 */
import { readFileSync } from 'node:fs'
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { EndpointSlice } from '../../src/kube/types.ts'
import { parseLabelSelector } from './label-selector.ts'

const SSAR_PATH = '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews'
const TLS_DIR = fileURLToPath(new URL('../../test/fixtures/tls/', import.meta.url))
export const CLUSTER_CA_FILE = `${TLS_DIR}cluster-ca.crt`
export const ROGUE_CA_FILE = `${TLS_DIR}rogue-ca.crt`
/** The cluster's next CA, for CA rotation (test/fixtures/tls/generate.sh). */
export const ROTATED_CA_FILE = `${TLS_DIR}rotated-ca.crt`
export type CertificateName = 'cluster' | 'rogue' | 'rotated'
const serverCertificate = (name: CertificateName) => ({
  cert: readFileSync(`${TLS_DIR}${name}-server.crt`),
  key: readFileSync(`${TLS_DIR}${name}-server.key`),
})

export type Verb = 'list' | 'watch'
/** `create`: a SelfSubjectAccessReview (POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews). */
export type RequestVerb = Verb | 'create'
export type RecordedRequest = {
  verb: RequestVerb
  method: string
  path: string
  query: URLSearchParams
  authorization: string | undefined
  userAgent: string | undefined
  acceptEncoding: string | undefined
  at: number
}
export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'

export type Fault =
  /** Answer with this status, body and headers instead of serving the request. */
  | { kind: 'status'; status: number; body: string; headers?: Record<string, string> }
  /** Destroy the socket without answering (a connection reset). */
  | { kind: 'reset' }
  /** Accept the request and never answer (until the client gives up or the server closes). */
  | { kind: 'hang' }
  /** Answer 200 with this raw body (malformed JSON, truncated streams, ...). */
  | { kind: 'raw'; body: string; contentType?: string }
  /** Answer 200 with headers flushed, then send nothing, ever: a stalled stream (no events, no bookmarks). */
  | { kind: 'stall' }
  /** Answer 200, send these first bytes of a body, then destroy the connection: a reset mid-response. */
  | { kind: 'cut'; partial: string }
  /**
   * Answer 200 with `prefix`, then `bytes` bytes of `x` (in writes of `chunkBytes`, waiting for the socket to
   * drain), then `suffix`; end the response only if `end`. A watch line that never ends, a 100 MB page, ...
   */
  | { kind: 'flood'; prefix: string; bytes: number; suffix: string; end: boolean; chunkBytes?: number }
  /** Answer 200 with this body gzip-compressed (content-encoding: gzip, whatever the client asked for). */
  | { kind: 'gzip'; body: Buffer }
  /** A LIST page of `slices` slices (each `endpointsPerSlice` endpoints, the first this pod's, ready) and a continue token, forever. */
  | { kind: 'endless-pages'; slices: number; endpointsPerSlice: number; podIp: string }

export type FakeKubeOptions = {
  namespace?: string
  /** Serve HTTPS with the test cluster CA (default), or plain HTTP. */
  tls?: boolean
  /** Serve the rogue CA's certificate instead: a server that must never be trusted. */
  rogueCertificate?: boolean
  tokens?: string[]
  /** Send BOOKMARK events this often to watchers that asked for them; 0: never. */
  bookmarkIntervalMs?: number
  /**
   * Send each watch event in pieces of at most this many bytes, a few milliseconds apart, so the client reads an
   * event split across chunks (as a proxy or a slow link delivers them); default: each event in one write.
   */
  watchChunkBytes?: number
  /** Answer SelfSubjectAccessReviews (default true); false: 404, as a server without authorization.k8s.io/v1. */
  accessReviews?: boolean
  port?: number
  host?: string
  /** Serve this certificate (PEM) instead of the fixture's, e.g. one issued for an address other than loopback. */
  certificate?: { cert: string | Buffer; key: string | Buffer }
}

type Stored = { slice: EndpointSlice; labels: Record<string, string> }
type HistoryEntry = { rv: number; type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: EndpointSlice; labels: Record<string, string> }
type Matcher = (labels: Record<string, string>, object: EndpointSlice) => boolean
type Watcher = { res: ServerResponse; matches: Matcher; bookmarks: boolean; bytes: number; sending: Promise<void> }

export type FakeKube = Awaited<ReturnType<typeof startFakeKube>>

export async function startFakeKube(options: FakeKubeOptions = {}) {
  const namespace = options.namespace ?? 'default'
  const tls = options.tls ?? true
  // How many past events a WATCH can resume from (older resourceVersions get ERROR 410): a bounded window, as
  // the API server's watch cache keeps, so long simulator runs do not grow without end.
  const historyLimit = 10_000
  let tokens = new Set(options.tokens ?? ['test-token'])
  const forbidden = new Set<Verb>()
  const slices = new Map<string, Stored>()
  let history: HistoryEntry[] = []
  let resourceVersion = 1000
  /** Lowest resourceVersion a WATCH may start from; below it the history is gone. */
  let oldestWatchable = resourceVersion
  const watchers = new Set<Watcher>()
  const faults: Array<{ verb: RequestVerb | undefined; fault: Fault; always?: boolean }> = []
  let pageCounter = 0
  const requests: RecordedRequest[] = []
  const sockets = new Set<Socket>()
  let bytesSent = 0
  let continueExpiries = 0
  // Core v1 Pods (GET one) and Events (POST), for the grace budget and the drain's Events.
  const pods = new Map<string, unknown>()
  const events: Array<Record<string, any>> = []
  const refusedCore = new Map<'pods' | 'events', number>()

  const collection = `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://fake')
    const query = url.searchParams
    const watchParam = query.get('watch')
    // apimachinery: any value but "0" or "false" (case-insensitive), even an empty one, means watch.
    const review = url.pathname === SSAR_PATH
    const verb: RequestVerb = review
      ? 'create'
      : watchParam !== null && watchParam !== '0' && watchParam.toLowerCase() !== 'false'
        ? 'watch'
        : 'list'
    requests.push({
      verb,
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      authorization: req.headers.authorization,
      userAgent: req.headers['user-agent'],
      acceptEncoding: req.headers['accept-encoding'],
      at: performance.now(),
    })

    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
    if (bearer === undefined) {
      // No credentials at all: the API server (anonymous auth on, its default) takes the request as
      // system:anonymous, whom RBAC grants nothing here: 403, not 401.
      return review
        ? sendStatus(
            res,
            403,
            'Forbidden',
            'selfsubjectaccessreviews.authorization.k8s.io is forbidden: User "system:anonymous" cannot create resource "selfsubjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope',
            { group: 'authorization.k8s.io', kind: 'selfsubjectaccessreviews' },
          )
        : sendStatus(
            res,
            403,
            'Forbidden',
            `endpointslices.discovery.k8s.io is forbidden: User "system:anonymous" cannot ${verb} resource "endpointslices" in API group "discovery.k8s.io" in the namespace "${namespace}"`,
            { group: 'discovery.k8s.io', kind: 'endpointslices' },
          )
    }
    if (!tokens.has(bearer)) {
      return sendStatus(res, 401, 'Unauthorized', 'Unauthorized')
    }
    if (review && options.accessReviews !== false) {
      // A fault queued without a verb is meant for LIST/WATCH; reviews take only faults queued for 'create'.
      const reviewFault = faults.findIndex((f) => f.verb === 'create')
      if (reviewFault !== -1) return applyFault(req, res, takeFault(reviewFault))
      return void answerReview(req, res)
    }
    if (url.pathname.startsWith(`/api/v1/namespaces/${namespace}/`))
      return void serveCore(req, res, url.pathname.slice(`/api/v1/namespaces/${namespace}/`.length))
    if (url.pathname !== collection) {
      return sendStatus(res, 404, 'NotFound', `the server could not find the requested resource`)
    }
    if (req.method !== 'GET') {
      return sendStatus(res, 405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`)
    }
    if (verb !== 'create' && forbidden.has(verb)) {
      return sendStatus(
        res,
        403,
        'Forbidden',
        `endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:${namespace}:drain-coordinator" cannot ${verb} resource "endpointslices" in API group "discovery.k8s.io" in the namespace "${namespace}"`,
        { group: 'discovery.k8s.io', kind: 'endpointslices' },
      )
    }
    const faultIndex = faults.findIndex((f) => (f.verb === undefined && verb !== 'create') || f.verb === verb)
    if (faultIndex !== -1) return applyFault(req, res, takeFault(faultIndex))
    let matches: Matcher
    try {
      const labels = parseLabelSelector(query.get('labelSelector') ?? '')
      const fields = parseFieldSelector(query.get('fieldSelector') ?? '')
      matches = (labelSet, object) => labels(labelSet) && fields(object)
    } catch (error) {
      return sendStatus(res, 400, 'BadRequest', (error as Error).message)
    }
    if (verb === 'list') return serveList(res, query, matches)
    return serveWatch(req, res, query, matches)
  }

  /** GET pods/NAME and POST events, nothing else; a refused resource answers with its status (403: Forbidden). */
  async function serveCore(req: IncomingMessage, res: ServerResponse, rest: string) {
    const [resource, name] = rest.split('/') as [string, string | undefined]
    const refused = refusedCore.get(resource as 'pods' | 'events')
    const verb = resource === 'events' ? 'create' : 'get'
    if (refused !== undefined) {
      return sendStatus(
        res,
        refused,
        refused === 403 ? 'Forbidden' : 'InternalError',
        `${resource} is forbidden: User "system:serviceaccount:${namespace}:drain-coordinator" cannot ${verb} resource "${resource}" in API group "" in the namespace "${namespace}"`,
      )
    }
    if (resource === 'pods' && name !== undefined && req.method === 'GET') {
      const pod = pods.get(name)
      if (pod === undefined) return sendStatus(res, 404, 'NotFound', `pods "${name}" not found`)
      res.writeHead(200, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify(pod))
    }
    if (resource === 'events' && name === undefined && req.method === 'POST') {
      let text = ''
      for await (const chunk of req) text += chunk
      const event = JSON.parse(text) as Record<string, any>
      events.push(event)
      res.writeHead(201, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify({ ...event, metadata: { ...event.metadata, resourceVersion: String(++resourceVersion) } }))
    }
    sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource')
  }

  /** Allowed: list and watch on endpointslices.discovery.k8s.io in this namespace, unless forbidden. */
  async function answerReview(req: IncomingMessage, res: ServerResponse) {
    if (req.method !== 'POST')
      return sendStatus(res, 405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')
    let text = ''
    for await (const chunk of req) text += chunk
    let spec: { resourceAttributes?: { namespace?: string; verb?: string; group?: string; resource?: string } }
    try {
      spec = (JSON.parse(text) as { spec?: typeof spec }).spec ?? {}
    } catch {
      return sendStatus(res, 400, 'BadRequest', 'the body of the request was in an unknown format')
    }
    const attrs = spec.resourceAttributes ?? {}
    const allowed =
      attrs.group === 'discovery.k8s.io' &&
      attrs.resource === 'endpointslices' &&
      attrs.namespace === namespace &&
      (attrs.verb === 'list' || attrs.verb === 'watch') &&
      !forbidden.has(attrs.verb)
    sendJson(res, 201, {
      kind: 'SelfSubjectAccessReview',
      apiVersion: 'authorization.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec,
      status: { allowed, ...(allowed ? { reason: 'RBAC: allowed by RoleBinding "drain-coordinator/' + namespace + '"' } : {}) },
    })
  }

  function serveList(res: ServerResponse, query: URLSearchParams, matches: Matcher) {
    const limit = Number(query.get('limit') ?? 0)
    let offset = 0
    let listVersion = resourceVersion
    const token = query.get('continue')
    if (token) {
      const decoded = JSON.parse(Buffer.from(token, 'base64url').toString()) as { rv: number; offset: number }
      if (decoded.rv < oldestWatchable || continueExpiries > 0) {
        continueExpiries = Math.max(0, continueExpiries - 1)
        return sendStatus(
          res,
          410,
          'Expired',
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
        )
      }
      offset = decoded.offset
      listVersion = decoded.rv
    }
    const all = [...slices.values()]
      .filter((s) => matches(s.labels, s.slice))
      .sort((a, b) => (a.slice.metadata!.name! < b.slice.metadata!.name! ? -1 : 1))
    const page = limit > 0 ? all.slice(offset, offset + limit) : all.slice(offset)
    const more = limit > 0 && offset + limit < all.length
    // List items carry no kind/apiVersion: the API server leaves TypeMeta off them.
    const items = page.map(({ slice }) => {
      const { kind: _kind, apiVersion: _apiVersion, ...rest } = slice
      return rest
    })
    sendJson(res, 200, {
      kind: 'EndpointSliceList',
      apiVersion: 'discovery.k8s.io/v1',
      metadata: {
        resourceVersion: String(listVersion),
        ...(more
          ? {
              continue: Buffer.from(JSON.stringify({ rv: listVersion, offset: offset + limit })).toString('base64url'),
              remainingItemCount: all.length - offset - limit,
            }
          : {}),
      },
      items,
    })
  }

  function serveWatch(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, matches: Matcher) {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' })
    res.flushHeaders()
    const watcher: Watcher = { res, matches, bookmarks: query.get('allowWatchBookmarks') === 'true', bytes: 0, sending: Promise.resolve() }
    const rvParam = query.get('resourceVersion')
    if (rvParam === null || rvParam === '' || rvParam === '0') {
      for (const stored of slices.values()) if (matches(stored.labels, stored.slice)) write(watcher, 'ADDED', stored.slice)
    } else {
      const from = Number(rvParam)
      if (!Number.isFinite(from) || from < oldestWatchable) {
        write(watcher, 'ERROR', expiredStatus(`too old resource version: ${rvParam} (${oldestWatchable})`))
        res.end()
        return
      }
      for (const entry of history) if (entry.rv > from && matches(entry.labels, entry.object)) write(watcher, entry.type, entry.object)
    }
    watchers.add(watcher)
    const timeoutSeconds = Number(query.get('timeoutSeconds') ?? 0)
    const timers: NodeJS.Timeout[] = []
    if (timeoutSeconds > 0) timers.push(setTimeout(() => res.end(), timeoutSeconds * 1_000))
    // The watch cache sends a bookmark 2 s before the watch's deadline, if its resourceVersion has moved past the
    // watcher's since the watch began (an unchanged one is not worth sending).
    const startVersion = resourceVersion
    if (watcher.bookmarks && timeoutSeconds > 2) {
      timers.push(
        setTimeout(() => resourceVersion > startVersion && write(watcher, 'BOOKMARK', bookmarkObject()), (timeoutSeconds - 2) * 1_000),
      )
    }
    if (watcher.bookmarks && (options.bookmarkIntervalMs ?? 0) > 0) {
      timers.push(setInterval(() => write(watcher, 'BOOKMARK', bookmarkObject()), options.bookmarkIntervalMs))
    }
    const cleanup = () => {
      watchers.delete(watcher)
      for (const timer of timers) clearTimeout(timer)
    }
    res.on('close', cleanup)
    req.on('close', cleanup)
  }

  function write(watcher: Watcher, type: EventType, object: unknown, serialized?: string) {
    if (watcher.res.writableEnded || watcher.res.destroyed) return
    const line = serialized ?? JSON.stringify({ type, object }) + '\n'
    watcher.bytes += line.length
    bytesSent += line.length
    const chunkBytes = options.watchChunkBytes
    if (chunkBytes !== undefined) {
      // In order behind the pieces already queued for this watcher, each piece its own flushed write.
      const pieces = Array.from({ length: Math.ceil(line.length / chunkBytes) }, (_, i) => line.slice(i * chunkBytes, (i + 1) * chunkBytes))
      watcher.sending = watcher.sending.then(async () => {
        for (const piece of pieces) {
          if (watcher.res.writableEnded || watcher.res.destroyed) return
          watcher.res.write(piece)
          watcher.res.socket?.uncork()
          await new Promise((resolve) => setTimeout(resolve, 2))
        }
      })
      return
    }
    watcher.res.write(line)
    // Out now, as the API server flushes each watch event once written (serveWatch's flusher.Flush()); Node's http
    // would otherwise cork the socket until the next tick, so every event of a burst would wait for the last one.
    watcher.res.socket?.uncork()
  }

  function broadcast(entry: HistoryEntry) {
    history.push(entry)
    if (history.length > historyLimit) {
      history = history.slice(-historyLimit)
      oldestWatchable = history[0]!.rv - 1
    }
    // Serialized once per event, however many watchers get it, as the API server's watch cache does.
    let line: string | undefined
    for (const watcher of watchers) {
      if (!watcher.matches(entry.labels, entry.object)) continue
      line ??= JSON.stringify({ type: entry.type, object: entry.object }) + '\n'
      write(watcher, entry.type, entry.object, line)
    }
  }

  /** The fault at `index`: removed from the queue, unless it is for every request. */
  function takeFault(index: number): Fault {
    const entry = faults[index]!
    if (!entry.always) faults.splice(index, 1)
    return entry.fault
  }

  async function flood(res: ServerResponse, fault: Extract<Fault, { kind: 'flood' }>) {
    res.writeHead(200, { 'content-type': 'application/json' })
    const write = async (data: string | Buffer) => {
      if (res.destroyed) return false
      if (!res.write(data)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off('drain', done)
            res.off('close', done)
            resolve()
          }
          res.on('drain', done)
          res.on('close', done)
        })
      }
      return !res.destroyed
    }
    const chunkBytes = fault.chunkBytes ?? 64 * 1024
    const chunk = Buffer.alloc(chunkBytes, 'x')
    if (!(await write(fault.prefix))) return
    for (let sent = 0; sent < fault.bytes; sent += chunkBytes) {
      if (!(await write(sent + chunkBytes <= fault.bytes ? chunk : chunk.subarray(0, fault.bytes - sent)))) return
    }
    if (!(await write(fault.suffix))) return
    if (fault.end) res.end()
  }

  /** The items of an endless page, serialized once per fault: pages then cost the server nothing to send. */
  const endlessItems = new WeakMap<Fault, string>()

  function endlessPage(res: ServerResponse, fault: Extract<Fault, { kind: 'endless-pages' }>) {
    const page = ++pageCounter
    let items = endlessItems.get(fault)
    if (items === undefined) {
      items = JSON.stringify(
        Array.from({ length: fault.slices }, (_, i) => ({
          metadata: { name: `endless-${i}`, namespace, labels: { 'kubernetes.io/service-name': `endless-${i}` } },
          addressType: 'IPv4',
          endpoints: Array.from({ length: fault.endpointsPerSlice }, (_, e) => ({
            addresses: [e === 0 ? fault.podIp : `198.18.${(e >> 8) & 255}.${e & 255}`],
            conditions: { ready: true, serving: true, terminating: false },
            nodeName: `node-${e % 50}.example.internal`,
            targetRef: { kind: 'Pod', namespace, name: `pod-${i}-${e}`, uid: `00000000-0000-4000-8000-${String(e).padStart(12, '0')}` },
          })),
        })),
      )
      endlessItems.set(fault, items)
    }
    const text = `{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"${resourceVersion}","continue":"page-${page}"},"items":${items}}`
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  }

  function applyFault(req: IncomingMessage, res: ServerResponse, fault: Fault) {
    switch (fault.kind) {
      case 'flood':
        void flood(res, fault)
        return
      case 'gzip':
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
        res.end(fault.body)
        return
      case 'endless-pages':
        return endlessPage(res, fault)
      case 'status':
        res.writeHead(fault.status, { 'content-type': 'text/plain; charset=utf-8', ...fault.headers })
        res.end(fault.body)
        return
      case 'reset':
        req.socket.destroy()
        return
      case 'hang':
        return
      case 'stall':
        res.writeHead(200, { 'content-type': 'application/json' })
        res.flushHeaders()
        return
      case 'raw':
        res.writeHead(200, { 'content-type': fault.contentType ?? 'application/json' })
        res.end(fault.body)
        return
      case 'cut':
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write(fault.partial)
        res.socket?.uncork()
        setTimeout(() => req.socket.destroy(), 20)
        return
    }
  }

  const tlsOptions = tls ? (options.certificate ?? serverCertificate(options.rogueCertificate ? 'rogue' : 'cluster')) : undefined
  const server: Server = tlsOptions ? createHttpsServer(tlsOptions, handler) : createHttpServer(handler)
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, host, resolve))
  const { port } = server.address() as AddressInfo
  const urlHost = host.includes(':') ? `[${host}]` : host

  const store = (type: 'ADDED' | 'MODIFIED', slice: EndpointSlice) => {
    resourceVersion++
    const object: EndpointSlice = structuredClone(slice)
    object.kind = 'EndpointSlice'
    object.apiVersion = 'discovery.k8s.io/v1'
    object.metadata = { namespace, ...object.metadata, resourceVersion: String(resourceVersion) }
    const labels = object.metadata.labels ?? {}
    slices.set(object.metadata.name!, { slice: object, labels })
    broadcast({ rv: resourceVersion, type, object, labels })
  }

  return {
    url: `${tls ? 'https' : 'http'}://${urlHost}:${port}`,
    caFile: CLUSTER_CA_FILE,
    namespace,
    requests,
    get resourceVersion() {
      return resourceVersion
    },
    get watcherCount() {
      return watchers.size
    },
    /** Bytes of watch events written to watchers so far. */
    get watchBytes() {
      return bytesSent
    },
    /** Stores a Pod (any JSON: tests send malformed ones too) under its name, or under `name`. */
    setPod(pod: unknown, name = (pod as { metadata?: { name?: string } }).metadata?.name ?? '') {
      pods.set(name, pod)
    },
    /** Events POSTed so far, as received. */
    events,
    /** Answer GET pods or POST events with this status (403 by default) until allowed again. */
    refuseCore(resource: 'pods' | 'events', status = 403) {
      refusedCore.set(resource, status)
    },
    get(name: string): EndpointSlice | undefined {
      const stored = slices.get(name)
      return stored ? structuredClone(stored.slice) : undefined
    },
    /** Creates or replaces a slice (ADDED or MODIFIED to watchers). */
    upsert(slice: EndpointSlice) {
      store(slices.has(slice.metadata?.name ?? '') ? 'MODIFIED' : 'ADDED', slice)
    },
    /** Deletes a slice (DELETED to watchers, with the object as it last was). */
    remove(name: string) {
      const stored = slices.get(name)
      if (!stored) return
      slices.delete(name)
      resourceVersion++
      const object = { ...structuredClone(stored.slice), metadata: { ...stored.slice.metadata, resourceVersion: String(resourceVersion) } }
      broadcast({ rv: resourceVersion, type: 'DELETED', object, labels: stored.labels })
    },
    /** Forgets the event history, as etcd compaction does: watches from older resourceVersions get ERROR 410. */
    compact() {
      history = []
      oldestWatchable = resourceVersion
    },
    /** The next `count` LIST pages asked for with a continue token get HTTP 410 (the revision was compacted). */
    expireContinueTokens(count = 1) {
      continueExpiries += count
    },
    /** Sends every open watch an ERROR event with a 410 Expired Status, then closes it (watch cache dropped it). */
    expireWatches() {
      for (const watcher of [...watchers]) {
        write(watcher, 'ERROR', expiredStatus(`too old resource version: ${resourceVersion - 1} (${resourceVersion})`))
        watcher.res.end()
      }
    },
    /** Ends every open watch normally (as the server does when timeoutSeconds elapses). */
    closeWatches() {
      for (const watcher of [...watchers]) watcher.res.end()
    },
    bookmark() {
      for (const watcher of watchers) if (watcher.bookmarks) write(watcher, 'BOOKMARK', bookmarkObject())
    },
    /**
     * Serves another certificate from now on, as an API server restarted after a CA rotation does: open
     * connections (and watches) are dropped, so every client must handshake again.
     */
    useCertificate(name: CertificateName) {
      if (!tls) throw new Error('useCertificate: this fake serves plain HTTP')
      ;(server as import('node:https').Server).setSecureContext(serverCertificate(name))
      for (const watcher of watchers) watcher.res.destroy()
      for (const socket of sockets) socket.destroy()
    },
    /** Replaces the accepted bearer tokens (a rotation). */
    acceptTokens(list: string[]) {
      tokens = new Set(list)
    },
    forbid(verb: Verb) {
      forbidden.add(verb)
    },
    allow(verb: Verb) {
      forbidden.delete(verb)
    },
    /** Queues a fault for the next request of that verb (or of any LIST/WATCH; reviews only for 'create'). */
    fault(fault: Fault, verb?: RequestVerb) {
      faults.push({ verb, fault })
    },
    /** Answers every request of that verb (or every LIST/WATCH) with this fault from now on: a hostile server. */
    alwaysFault(fault: Fault, verb?: RequestVerb) {
      faults.push({ verb, fault, always: true })
    },
    /** Plain-text 429 as API Priority and Fairness sends it. */
    tooManyRequests(retryAfterSeconds: number, verb?: Verb) {
      faults.push({
        verb,
        fault: {
          kind: 'status',
          status: 429,
          body: 'Too many requests, please try again later.\n',
          headers: { 'retry-after': String(retryAfterSeconds) },
        },
      })
    },
    countRequests(verb?: RequestVerb) {
      return verb === undefined ? requests.length : requests.filter((r) => r.verb === verb).length
    },
    async untilWatching(count = 1, timeoutMs = 10_000) {
      const until = performance.now() + timeoutMs
      while (watchers.size < count) {
        if (performance.now() > until) throw new Error(`expected ${count} watcher(s), have ${watchers.size}`)
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    },
    async close() {
      for (const watcher of watchers) watcher.res.destroy()
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }

  function bookmarkObject() {
    // An empty EndpointSlice with only the resourceVersion, as the watch cache builds it (c.newFunc()).
    return {
      kind: 'EndpointSlice',
      apiVersion: 'discovery.k8s.io/v1',
      metadata: { resourceVersion: String(resourceVersion) },
      addressType: '',
      endpoints: null,
      ports: null,
    }
  }
}

/** Field selectors: EndpointSlices, like every resource, support only metadata.name and metadata.namespace. */
function parseFieldSelector(selector: string): (object: EndpointSlice) => boolean {
  const requirements: Array<(object: EndpointSlice) => boolean> = []
  for (const clause of selector.split(',')) {
    if (clause.trim() === '') continue
    const match = /^\s*([\w.]+)\s*(==|=|!=)\s*([^,]*?)\s*$/.exec(clause)
    if (!match) throw new Error(`invalid selector: '${selector}'; can't understand '${clause}'`)
    const [, field, op, value] = match as unknown as [string, string, string, string]
    const read =
      field === 'metadata.name'
        ? (o: EndpointSlice) => o.metadata?.name
        : field === 'metadata.namespace'
          ? (o: EndpointSlice) => o.metadata?.namespace
          : undefined
    if (read === undefined) throw new Error(`"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"`)
    requirements.push(op === '!=' ? (o) => read(o) !== value : (o) => read(o) === value)
  }
  return (object) => requirements.every((requirement) => requirement(object))
}

function expiredStatus(message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'Expired', code: 410 }
}

function sendJson(res: ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function sendStatus(res: ServerResponse, code: number, reason: string, message: string, details?: Record<string, unknown>) {
  sendJson(res, code, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  })
}
