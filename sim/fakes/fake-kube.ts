/**
 * A fake Kubernetes API server for EndpointSlices in one namespace, speaking the real wire format over real
 * HTTP(S) (docs/kubernetes-api.md): bearer-token auth with 401 Status bodies, 403 Status for a
 * forbidden verb, paginated LIST (limit/continue, list items without `kind`), streaming WATCH from a
 * resourceVersion (one JSON object per line, events with `kind`), BOOKMARK events, a too-old resourceVersion
 * answered with HTTP 200 and an ERROR event holding a 410 Status (a LIST with an expired continue token gets a
 * real HTTP 410), and APF-style plain-text 429s. Faults can be queued for the next matching request.
 *
 * This file routes requests and serves them; the parts live beside it: fake-kube-auth.ts (certificates, tokens,
 * RBAC, access reviews), fake-kube-store.ts (slices, resourceVersions, watches), fake-kube-list.ts (selectors and
 * pages), fake-kube-core.ts (Pods and Events), fake-kube-faults.ts, fake-kube-status.ts (Status bodies).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { EndpointSlice } from '../../src/kube/types.ts'
import { sleep } from '../common.ts'
import {
  answerReview,
  type CertificateName,
  CLUSTER_CA_FILE,
  refuseUnauthenticated,
  sendForbidden,
  serverCertificate,
  sidecarUser,
} from './fake-kube-auth.ts'
import { type CoreResource, createCoreApi } from './fake-kube-core.ts'
import { createFaults, type Fault } from './fake-kube-faults.ts'
import { createLister, selectorMatcher } from './fake-kube-list.ts'
import { recordRequest, type RecordedRequest, requestVerb, type Verb, type RequestVerb } from './fake-kube-request.ts'
import { sendMethodNotAllowed, sendNotFound, sendStatus } from './fake-kube-status.ts'
import { createSliceStore, type Matcher } from './fake-kube-store.ts'

export { CLUSTER_CA_FILE, ROGUE_CA_FILE, ROTATED_CA_FILE, type CertificateName } from './fake-kube-auth.ts'
export type { Fault } from './fake-kube-faults.ts'
export type { RecordedRequest, RequestVerb, Verb } from './fake-kube-request.ts'
export type { EventType } from './fake-kube-store.ts'

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

export type FakeKube = Awaited<ReturnType<typeof startFakeKube>>

export async function startFakeKube(options: FakeKubeOptions = {}) {
  const namespace = options.namespace ?? 'default'
  const tls = options.tls ?? true
  let tokens = new Set(options.tokens ?? ['test-token'])
  const forbidden = new Set<Verb>()
  const store = createSliceStore(namespace, options)
  const lister = createLister(store)
  const core = createCoreApi(namespace, () => store.nextResourceVersion())
  const faults = createFaults(namespace, () => store.resourceVersion)
  const requests: RecordedRequest[] = []
  const sockets = new Set<Socket>()

  const collection = `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`
  const corePrefix = `/api/v1/namespaces/${namespace}/`

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://fake')
    const query = url.searchParams
    const verb = requestVerb(url)
    requests.push(recordRequest(req, url, verb))

    if (refuseUnauthenticated(req, res, tokens, verb, namespace)) return
    if (verb === 'create' && options.accessReviews !== false) {
      const fault = faults.take('create')
      if (fault !== undefined) return faults.answer(req, res, fault)
      return void answerReview(req, res, namespace, forbidden)
    }
    if (url.pathname.startsWith(corePrefix)) return void core.serve(req, res, url.pathname.slice(corePrefix.length))
    if (url.pathname !== collection) return sendNotFound(res)
    if (req.method !== 'GET') return sendMethodNotAllowed(res)
    if (verb !== 'create' && forbidden.has(verb)) return sendForbidden(res, sidecarUser(namespace), verb, namespace)
    const fault = faults.take(verb)
    if (fault !== undefined) return faults.answer(req, res, fault)
    let matches: Matcher
    try {
      matches = selectorMatcher(query)
    } catch (error) {
      return sendStatus(res, 400, 'BadRequest', (error as Error).message)
    }
    if (verb === 'list') return lister.serve(res, query, matches)
    return store.watch(req, res, query, matches)
  }

  const tlsOptions = tls ? (options.certificate ?? serverCertificate(options.rogueCertificate ? 'rogue' : 'cluster')) : undefined
  const server: Server = tlsOptions ? createHttpsServer(tlsOptions, handler) : createHttpServer(handler)
  const track = (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  }
  server.on('connection', track)
  server.on('secureConnection', track)
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, host, resolve))
  const { port } = server.address() as AddressInfo
  const urlHost = host.includes(':') ? `[${host}]` : host

  return {
    url: `${tls ? 'https' : 'http'}://${urlHost}:${port}`,
    caFile: CLUSTER_CA_FILE,
    namespace,
    requests,
    get resourceVersion() {
      return store.resourceVersion
    },
    get watcherCount() {
      return store.watcherCount
    },
    /** Bytes of watch events written to watchers so far. */
    get watchBytes() {
      return store.watchBytes
    },
    /** Stores a Pod (any JSON: tests send malformed ones too) under its name, or under `name`. */
    setPod(pod: unknown, name = (pod as { metadata?: { name?: string } }).metadata?.name ?? '') {
      core.setPod(name, pod)
    },
    /** Events POSTed so far, as received. */
    events: core.events,
    /** Answer GET pods or POST events with this status (403 by default) until allowed again. */
    refuseCore(resource: CoreResource, status = 403) {
      core.refuse(resource, status)
    },
    get(name: string): EndpointSlice | undefined {
      return store.get(name)
    },
    /** Creates or replaces a slice (ADDED or MODIFIED to watchers). */
    upsert(slice: EndpointSlice) {
      store.upsert(slice)
    },
    /** Deletes a slice (DELETED to watchers, with the object as it last was). */
    remove(name: string) {
      store.remove(name)
    },
    /** Forgets the event history, as etcd compaction does: watches from older resourceVersions get ERROR 410. */
    compact() {
      store.compact()
    },
    /** The next `count` LIST pages asked for with a continue token get HTTP 410 (the revision was compacted). */
    expireContinueTokens(count = 1) {
      lister.expireContinueTokens(count)
    },
    /** Sends every open watch an ERROR event with a 410 Expired Status, then closes it (watch cache dropped it). */
    expireWatches() {
      store.expireWatches()
    },
    /** Ends every open watch normally (as the server does when timeoutSeconds elapses). */
    closeWatches() {
      store.closeWatches()
    },
    bookmark() {
      store.bookmark()
    },
    /**
     * Serves another certificate from now on, as an API server restarted after a CA rotation does: open
     * connections (and watches) are dropped, so every client must handshake again.
     */
    useCertificate(name: CertificateName) {
      if (!tls) throw new Error('useCertificate: this fake serves plain HTTP')
      ;(server as HttpsServer).setSecureContext(serverCertificate(name))
      store.destroyWatches()
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
      faults.add(fault, verb)
    },
    /** Answers every request of that verb (or every LIST/WATCH) with this fault from now on: a hostile server. */
    alwaysFault(fault: Fault, verb?: RequestVerb) {
      faults.add(fault, verb, true)
    },
    /** Plain-text 429 as API Priority and Fairness sends it. */
    tooManyRequests(retryAfterSeconds: number, verb?: Verb) {
      faults.add(
        {
          kind: 'status',
          status: 429,
          body: 'Too many requests, please try again later.\n',
          headers: { 'retry-after': String(retryAfterSeconds) },
        },
        verb,
      )
    },
    countRequests(verb?: RequestVerb) {
      return verb === undefined ? requests.length : requests.filter((r) => r.verb === verb).length
    },
    async untilWatching(count = 1, timeoutMs = 10_000) {
      const until = performance.now() + timeoutMs
      while (store.watcherCount < count) {
        if (performance.now() > until) throw new Error(`expected ${count} watcher(s), have ${store.watcherCount}`)
        await sleep(5)
      }
    },
    async close() {
      store.destroyWatches()
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
