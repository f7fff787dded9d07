/**
 * The Kubernetes API fault matrix, against the real client (HTTPS, undici) and endpoint wait talking to the fake
 * API server: each test injects one fault and checks a promise (the wait keeps going and uses the API again once
 * it recovers, the caller's deadline always ends it, nothing is trusted that should not be).
 */
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { systemClock } from '../src/clock.ts'
import type { PodIdentity } from '../src/config.ts'
import { UpstreamError } from '../src/errors.ts'
import { checkKubeAccess } from '../src/kube/access-check.ts'
import { createKubeClient, type KubeClient } from '../src/kube/client.ts'
import { waitForEndpointRemoval } from '../src/kube/endpoint-wait.ts'
import { createFileTokenSource, staticToken, type TokenSource } from '../src/kube/token.ts'
import type { Logger } from '../src/log.ts'
import { createFetch } from '../src/transport.ts'
import { captureLog } from './helpers/capture-log.ts'
import { CLUSTER_CA_FILE, type Fault, startFakeKube } from '../sim/fakes/fake-kube.ts'
import { endpointSlice, READY, TERMINATING } from '../sim/fakes/fixtures.ts'
import { freePort } from '../sim/fakes/sidecar-process.ts'
import { podSlice, startPodSidecar } from '../sim/fakes/hostile-kube.ts'

const NS = 'shop'
const POD: PodIdentity = { name: 'web-1', namespace: NS, uid: 'uid-web-1', ips: ['10.0.0.7'] }
const CA = readFileSync(CLUSTER_CA_FILE, 'utf8')

/** The pod's slice (web-abcde), the pod in `conditions` beside one other ready pod. */
const holding = (conditions: object = READY) => podSlice(NS, '10.0.0.7', conditions)

function capture() {
  const log = captureLog()
  return { log, lines: log.lines }
}

async function setup(
  t: { teardown: (fn: () => unknown) => void },
  options: Parameters<typeof startFakeKube>[0] & { token?: TokenSource; requestTimeoutMs?: number; pageSize?: number } = {},
) {
  const kube = await startFakeKube({ namespace: NS, ...options })
  const fetch = createFetch({ ca: CA, connectTimeoutMs: 2_000 })
  const client = createKubeClient({
    apiUrl: kube.url,
    namespace: NS,
    fetch,
    token: options.token ?? staticToken('test-token'),
    clock: systemClock,
    userAgent: 'faults-test',
    requestTimeoutMs: options.requestTimeoutMs ?? 2_000,
    ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
  })
  t.teardown(async () => {
    await kube.close()
    await fetch.close()
  })
  return { kube, client, fetch }
}

function wait(client: KubeClient, log: Logger, signal: AbortSignal, mode: 'watch' | 'poll' = 'watch') {
  return waitForEndpointRemoval({ kube: client, clock: systemClock, log, pod: POD, mode, pollIntervalMs: 100, random: () => 0 }, signal)
}

async function until(predicate: () => boolean, what: string, timeoutMs = 10_000) {
  const end = performance.now() + timeoutMs
  while (!predicate()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

test('aborting the caller signal ends an open watch at once and closes its connection', async (t) => {
  const { kube, client } = await setup(t)
  kube.upsert(holding())
  const controller = new AbortController()
  const events: string[] = []
  const consumed = (async () => {
    for await (const event of client.watchEndpointSlices({ resourceVersion: String(kube.resourceVersion) }, controller.signal))
      events.push(event.type)
  })()
  await kube.untilWatching(1)
  const reason = new Error('drain deadline')
  const abortedAt = performance.now()
  controller.abort(reason)
  const error = await t.throwsAsync(consumed)
  t.is(error, reason)
  t.true(performance.now() - abortedAt < 5_000)
  await until(() => kube.watcherCount === 0, 'the watch connection to close')
  t.deepEqual(events, [])
})

/** Runs the endpoint wait with a deadline; resolves with what it returned or the error that ended it. */
async function drainWait(
  client: KubeClient,
  log: Logger,
  deadlineMs: number,
  extra: { watchIdleMs?: number; mode?: 'watch' | 'poll' } = {},
) {
  const controller = new AbortController()
  const reason = new Error('deadline')
  const timer = setTimeout(() => controller.abort(reason), deadlineMs)
  const startedAt = performance.now()
  try {
    const result = await waitForEndpointRemoval(
      {
        kube: client,
        clock: systemClock,
        log,
        pod: POD,
        mode: extra.mode ?? 'watch',
        pollIntervalMs: 100,
        random: () => 0,
        ...(extra.watchIdleMs === undefined ? {} : { watchIdleMs: extra.watchIdleMs }),
      },
      controller.signal,
    )
    return { result, error: undefined, deadlineHit: false, ms: performance.now() - startedAt }
  } catch (error) {
    return { result: undefined, error, deadlineHit: error === reason, ms: performance.now() - startedAt }
  } finally {
    clearTimeout(timer)
  }
}

test('a watch that stalls without bookmarks is abandoned after the idle limit and the wait finishes from a fresh LIST', async (t) => {
  const { kube, client } = await setup(t)
  const { log, lines } = capture()
  kube.upsert(holding())
  kube.fault({ kind: 'stall' }, 'watch')
  const running = drainWait(client, log, 10_000, { watchIdleMs: 300 })
  await until(() => kube.countRequests('watch') >= 1, 'the stalled watch')
  // The change happens while the only watch is stalled: it never reaches the client through that stream.
  kube.upsert(holding(TERMINATING))
  const { result, deadlineHit } = await running
  t.false(deadlineHit)
  t.truthy(result)
  t.true(lines.some((l) => l.event === 'endpoint_watch_idle'))
  t.is(kube.countRequests('list'), 2, 'listed again after the idle watch')
})

test('a path that stalls every watch (a buffering proxy) still ends the wait, through the LISTs', async (t) => {
  const { kube, client } = await setup(t)
  const { log } = capture()
  kube.upsert(holding())
  for (let i = 0; i < 50; i++) kube.fault({ kind: 'stall' }, 'watch')
  const running = drainWait(client, log, 10_000, { watchIdleMs: 300 })
  await until(() => kube.countRequests('watch') >= 2, 'two stalled watches')
  kube.upsert(holding(TERMINATING))
  const { result, deadlineHit } = await running
  t.false(deadlineHit, 'released by the endpoint change, not by the deadline')
  t.is(result?.mode, 'watch')
})

test('a quiet but healthy watch is renewed, not reported as failing', async (t) => {
  const { kube, client } = await setup(t)
  const { log, lines } = capture()
  kube.upsert(holding())
  const running = drainWait(client, log, 10_000, { watchIdleMs: 200 })
  await until(() => kube.countRequests('watch') >= 3, 'three watches')
  kube.upsert(holding(TERMINATING))
  const { result } = await running
  t.truthy(result)
  t.is(result!.mode, 'watch')
  t.false(lines.some((l) => l.event === 'endpoint_watch_failed' || l.event === 'endpoint_watch_abandoned'))
})

test('a LIST that never answers (hung socket) times out and is retried', async (t) => {
  // 1 s, not less: the retry's TLS handshake must fit in it on two busy cores.
  const { kube, client } = await setup(t, { requestTimeoutMs: 1_000 })
  const { log, lines } = capture()
  kube.upsert(holding(TERMINATING))
  kube.fault({ kind: 'hang' }, 'list')
  const { result, deadlineHit } = await drainWait(client, log, 10_000)
  t.false(deadlineHit)
  t.is(result?.slicesAtStart, 0)
  t.is(kube.countRequests('list'), 2)
  const failed = lines.find((l) => l.event === 'endpoint_list_failed')
  t.regex(JSON.stringify(failed?.error), /no answer within 1000ms/)
})

test('a WATCH whose headers never come times out and the wait watches again', async (t) => {
  const { kube, client } = await setup(t, { requestTimeoutMs: 1_000 })
  const { log } = capture()
  kube.upsert(holding())
  kube.fault({ kind: 'hang' }, 'watch')
  const running = drainWait(client, log, 10_000)
  await until(() => kube.countRequests('watch') >= 2, 'a second watch')
  kube.upsert(holding(TERMINATING))
  const { result } = await running
  t.is(result?.mode, 'watch')
})

test('connection refused until the API server comes up: the wait keeps trying and uses it once it answers', async (t) => {
  const port = await freePort()
  const fetch = createFetch({ ca: CA, connectTimeoutMs: 1_000 })
  t.teardown(() => fetch.close())
  const client = createKubeClient({
    apiUrl: `https://127.0.0.1:${port}`,
    namespace: NS,
    fetch,
    token: staticToken('test-token'),
    clock: systemClock,
    userAgent: 't',
    requestTimeoutMs: 1_000,
  })
  const { log, lines } = capture()
  const running = drainWait(client, log, 15_000)
  await until(() => lines.filter((l) => l.event === 'endpoint_list_failed').length >= 2, 'two refused LISTs')
  t.regex(JSON.stringify(lines.find((l) => l.event === 'endpoint_list_failed')?.error), /ECONNREFUSED|fetch failed/)
  const kube = await startFakeKube({ namespace: NS, port })
  t.teardown(() => kube.close())
  kube.upsert(holding(TERMINATING))
  const { result, deadlineHit } = await running
  t.false(deadlineHit)
  t.is(result?.slicesAtStart, 0)
  t.true(kube.countRequests('list') >= 1)
})

test('connection refused for good: the wait holds until the caller deadline, then ends with that deadline', async (t) => {
  const port = await freePort()
  const fetch = createFetch({ ca: CA })
  t.teardown(() => fetch.close())
  const client = createKubeClient({
    apiUrl: `https://127.0.0.1:${port}`,
    namespace: NS,
    fetch,
    token: staticToken('x'),
    clock: systemClock,
    userAgent: 't',
  })
  const { log } = capture()
  const { deadlineHit, ms } = await drainWait(client, log, 800)
  t.true(deadlineHit)
  t.true(ms < 800 + 2_000, `ended ${Math.round(ms)}ms after start`)
})

const statusBody = (code: number) =>
  JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'etcdserver: leader changed',
    reason: code === 500 ? 'InternalError' : 'ServiceUnavailable',
    code,
  })
const statusFault = (code: number): Fault => ({
  kind: 'status',
  status: code,
  body: statusBody(code),
  headers: { 'content-type': 'application/json' },
})

/** One fault on the first LIST and the first WATCH, and what each failure must be logged as (no lies). */
const retriedFaults: Array<{ fault: string; list: Fault; watch: Fault; listError: RegExp; watchError: RegExp; notListError?: RegExp }> = [
  {
    fault: 'a connection reset before the answer',
    list: { kind: 'reset' },
    watch: { kind: 'reset' },
    listError: /fetch failed|socket|ECONNRESET/i,
    watchError: /fetch failed|socket|ECONNRESET/i,
  },
  {
    fault: 'a connection reset in the middle of a LIST body and of a watch event',
    list: {
      kind: 'cut',
      partial:
        '{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":',
    },
    watch: { kind: 'cut', partial: '{"type":"MODIFIED","object":{"kind":"EndpointSlice","metadata":{"name":' },
    listError: /connection lost while reading the body/,
    notListError: /not JSON/,
    watchError: /stream broke/,
  },
  {
    fault: 'malformed JSON in a LIST and in a watch event',
    list: { kind: 'raw', body: '{"kind":"EndpointSliceList","items":[{"metadata":' },
    watch: { kind: 'raw', body: '{"type":"MODIFIED","object":{"metadata":{"name":\n' },
    listError: /not JSON/,
    watchError: /not JSON/,
  },
  {
    fault: 'HTTP 500',
    list: statusFault(500),
    watch: statusFault(500),
    listError: /status 500.*leader changed/,
    watchError: /leader changed/,
  },
  {
    fault: 'HTTP 503',
    list: statusFault(503),
    watch: statusFault(503),
    listError: /status 503.*leader changed/,
    watchError: /leader changed/,
  },
]

for (const { fault, list, watch, listError, watchError, notListError } of retriedFaults) {
  test(`${fault}: the LIST and the WATCH are retried, the answers after them used, and each failure logged as what it was`, async (t) => {
    const { kube, client } = await setup(t)
    const { log, lines } = capture()
    kube.upsert(holding())
    kube.fault(list, 'list')
    kube.fault(watch, 'watch')
    const running = drainWait(client, log, 10_000)
    await until(() => kube.countRequests('watch') >= 2, 'a watch after the failed one')
    kube.upsert(holding(TERMINATING))
    const { result, deadlineHit } = await running
    t.false(deadlineHit)
    t.is(result?.slicesAtStart, 1)
    const listFailure = JSON.stringify(lines.find((l) => l.event === 'endpoint_list_failed')?.error)
    t.regex(listFailure, listError)
    if (notListError) t.notRegex(listFailure, notListError)
    t.regex(JSON.stringify(lines.find((l) => l.event === 'endpoint_watch_failed')), watchError)
  })
}

test('watch events that arrive split across many small chunks are decoded whole', async (t) => {
  const { kube, client } = await setup(t, { watchChunkBytes: 7 })
  const { log, lines } = capture()
  kube.upsert(holding())
  const running = drainWait(client, log, 10_000)
  await kube.untilWatching(1)
  kube.upsert(holding(TERMINATING))
  const { result, deadlineHit } = await running
  t.false(deadlineHit)
  t.like(result, { slicesAtStart: 1, mode: 'watch' })
  t.true(kube.watchBytes > 7 * 10, 'the event took many pieces')
  t.false(lines.some((l) => l.event === 'endpoint_watch_failed' || l.event === 'endpoint_list_failed'))
})

test('429 with Retry-After (plain text, as APF sends it) delays the next LIST by at least that long', async (t) => {
  const { kube, client } = await setup(t)
  const { log, lines } = capture()
  kube.upsert(holding(TERMINATING))
  kube.tooManyRequests(1, 'list')
  const { result } = await drainWait(client, log, 10_000)
  t.is(result?.slicesAtStart, 0)
  const lists = kube.requests.filter((r) => r.verb === 'list')
  t.is(lists.length, 2)
  t.true(lists[1]!.at - lists[0]!.at >= 950, `retried after ${Math.round(lists[1]!.at - lists[0]!.at)}ms`)
  t.is(lines.find((l) => l.event === 'endpoint_list_failed')?.status, 429)
})

test('401 after token rotation: the token file is read again and the request repeated with the new token', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dc-token-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'token')
  await writeFile(file, 'token-one\n')
  const { log } = capture()
  const token = createFileTokenSource(file, {
    clock: systemClock,
    readFile: (path) => import('node:fs/promises').then((fs) => fs.readFile(path, 'utf8')),
  })
  const { kube, client } = await setup(t, { tokens: ['token-one'], token })
  kube.upsert(holding(TERMINATING))
  t.is((await client.listEndpointSlices({}, AbortSignal.timeout(5_000))).items.length, 1)
  // kubelet rotates the projected token; the API server stops accepting the old one. The cached copy is fresh.
  await writeFile(file, 'token-two\n')
  kube.acceptTokens(['token-two'])
  const { result } = await drainWait(client, log, 5_000)
  t.is(result?.slicesAtStart, 0)
  const auths = kube.requests.map((r) => r.authorization)
  t.deepEqual(auths, ['Bearer token-one', 'Bearer token-one', 'Bearer token-two'])
})

test('403 during a drain is an outage like any other: the wait holds to the deadline, retrying, and recovers when RBAC is fixed', async (t) => {
  const { kube, client } = await setup(t)
  const { log, lines } = capture()
  kube.upsert(holding(TERMINATING))
  kube.forbid('list')
  const denied = () => lines.filter((l) => l.event === 'endpoint_list_failed')
  // The deadline is whenever the test says, once the wait has shown it retries: busy cores cannot make it early.
  const deadline = new AbortController()
  const reason = new Error('deadline')
  const held = wait(client, log, deadline.signal).then(
    () => 'finished',
    (error: unknown) => error,
  )
  await until(() => denied().length >= 2, 'two denied LISTs')
  deadline.abort(reason)
  t.is(await held, reason, 'held until the deadline')
  t.true(denied().every((l) => l.status === 403))
  kube.allow('list')
  const { result } = await drainWait(client, log, 5_000)
  t.is(result?.slicesAtStart, 0)
})

test('a watch the server closes is resumed from the last resourceVersion, and ERROR 410 leads to a fresh LIST', async (t) => {
  const { kube, client } = await setup(t)
  const { log, lines } = capture()
  kube.upsert(holding())
  const running = drainWait(client, log, 10_000)
  await kube.untilWatching(1)
  // A slice this watch does not select moves the resourceVersion on without an event: only the bookmark tells the
  // client about the newer version. The stream delivers the bookmark before its close, so no wait is needed.
  kube.upsert(endpointSlice({ name: 'unrelated', service: 'other', namespace: NS, endpoints: [] }))
  kube.bookmark()
  const rv = kube.resourceVersion
  kube.closeWatches()
  await until(() => kube.countRequests('watch') >= 2 && kube.watcherCount === 1, 'the resumed watch')
  t.is(kube.requests.filter((r) => r.verb === 'watch')[1]!.query.get('resourceVersion'), String(rv))
  kube.expireWatches()
  await until(() => kube.countRequests('watch') >= 3 && kube.watcherCount === 1, 'the watch after 410')
  t.is(kube.countRequests('list'), 2)
  kube.upsert(holding(TERMINATING))
  const { result } = await running
  t.is(result?.mode, 'watch')
  t.true(lines.some((l) => l.event === 'endpoint_watch_expired'))
  t.false(lines.some((l) => l.event === 'endpoint_watch_failed'))
})

test('a server with a certificate from another CA is never trusted, and no request reaches it', async (t) => {
  const { kube, client } = await setup(t, { rogueCertificate: true })
  kube.upsert(holding(TERMINATING))
  const error = await t.throwsAsync(client.listEndpointSlices({}, AbortSignal.timeout(5_000)))
  t.true(error instanceof UpstreamError)
  t.regex(String(error?.message) + String((error?.cause as Error | undefined)?.cause), /certificate|self.signed|unable to verify/i)
  const { log } = capture()
  t.true((await drainWait(client, log, 600)).deadlineHit)
  t.is(kube.requests.length, 0)
})

test('a namespace with thousands of slices is listed page by page, and only slices naming the pod are held', async (t) => {
  const { kube, client } = await setup(t, { pageSize: 100 })
  for (let i = 0; i < 3_000; i++) {
    kube.upsert(
      endpointSlice({
        name: `other-${String(i).padStart(4, '0')}`,
        service: `svc-${i % 50}`,
        namespace: NS,
        endpoints: [{ ip: `10.1.${i >> 8}.${i & 255}`, ...READY }],
      }),
    )
  }
  kube.upsert(holding())
  const kept = await client.listEndpointSlices(
    { select: (item) => (item.ok && item.value.metadata?.name === 'web-abcde' ? item.value.metadata.name : undefined) },
    AbortSignal.timeout(20_000),
  )
  t.deepEqual(kept.items, ['web-abcde'])
  const lists = kube.requests.filter((r) => r.verb === 'list')
  t.is(lists.length, 31)
  t.true(lists.every((r) => r.query.get('limit') === '100'))
  t.true(lists.slice(1).every((r) => (r.query.get('continue') ?? '') !== ''))

  const { log, lines } = capture()
  const running = drainWait(client, log, 15_000)
  // Only once the 31-page LIST is through: a change during it would be listed instead of watched.
  await until(() => lines.some((l) => l.event === 'endpoints_listed'), 'the LIST')
  kube.upsert(holding(TERMINATING))
  const { result } = await running
  t.is(result?.slicesAtStart, 1)
})

// ---- Start-up access check (403 from missing RBAC) ----

async function accessCheck(t: Parameters<typeof setup>[0], options: Parameters<typeof setup>[1] = {}) {
  const { kube, fetch } = await setup(t, options)
  const { log, lines } = capture()
  const run = () =>
    checkKubeAccess({
      apiUrl: kube.url,
      namespace: NS,
      fetch,
      token: staticToken('test-token'),
      clock: systemClock,
      log,
      userAgent: 't',
      // No test here lets a request hang: the bound only has to be far above a TLS round trip on busy cores, so a
      // slow answer is never cut off and retried (which would change the request counts these tests assert).
      requestTimeoutMs: 10_000,
      retryDelayMs: 50,
    })
  return { kube, lines, run }
}

test('access check: with list and watch granted it says so in one line, via SelfSubjectAccessReview', async (t) => {
  const { kube, lines, run } = await accessCheck(t)
  t.deepEqual(await run(), { result: 'allowed', via: 'review' })
  t.deepEqual(
    lines.map((l) => l.event),
    ['kube_access_ok'],
  )
  const reviews = kube.requests.filter((r) => r.verb === 'create')
  t.is(reviews.length, 2)
  t.true(reviews.every((r) => r.method === 'POST' && r.path === '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews'))
  t.is(kube.countRequests('list') + kube.countRequests('watch'), 0)
})

test('access check: a missing verb is reported in ONE line naming the verb, the resource and the namespace', async (t) => {
  const { kube, lines, run } = await accessCheck(t)
  kube.forbid('watch')
  t.deepEqual(await run(), { result: 'denied', via: 'review', missing: ['watch'] })
  t.is(lines.length, 1)
  t.like(lines[0], {
    level: 'error',
    event: 'kube_access_denied',
    verb: 'watch',
    resource: 'endpointslices.discovery.k8s.io',
    namespace: NS,
  })
  t.regex(String(lines[0]!.message), /may not watch endpointslices\.discovery\.k8s\.io in namespace shop/)
})

test('access check: both verbs missing are still one line', async (t) => {
  const { kube, lines, run } = await accessCheck(t)
  kube.forbid('list')
  kube.forbid('watch')
  await run()
  t.is(lines.length, 1)
  t.like(lines[0], { event: 'kube_access_denied', verb: 'list,watch' })
})

test('access check: where reviews are unavailable, a LIST and a WATCH that match nothing are probed for 403', async (t) => {
  const { kube, lines, run } = await accessCheck(t, { accessReviews: false })
  kube.forbid('list')
  kube.upsert(holding())
  t.deepEqual(await run(), { result: 'denied', via: 'probe', missing: ['list'] })
  t.like(lines[0], { event: 'kube_access_denied', verb: 'list', namespace: NS })
  const probes = kube.requests.filter((r) => r.verb !== 'create')
  t.deepEqual(
    probes.map((r) => r.verb),
    ['list', 'watch'],
  )
  t.true(probes.every((r) => r.query.get('labelSelector') === 'drain-coordinator.io/access-check=never-set'))
})

test('access check: an unreachable API is reported as unchecked after a few attempts, never thrown', async (t) => {
  const { kube, lines, run } = await accessCheck(t)
  for (let i = 0; i < 3; i++) kube.fault({ kind: 'status', status: 503, body: 'unavailable' }, 'create')
  const report = await run()
  t.is(report.result, 'unknown')
  t.deepEqual(
    lines.map((l) => l.event),
    ['kube_access_unchecked'],
  )
  t.is(kube.countRequests('create'), 3)
})

test('black box: the bundle reports missing RBAC once at start-up, keeps serving, and a drain holds to its deadline', async (t) => {
  const kube = await startFakeKube({ namespace: NS })
  t.teardown(() => kube.close())
  kube.upsert(holding())
  kube.forbid('list')
  kube.forbid('watch')
  const sidecar = await startPodSidecar(kube, NS, '10.0.0.7', 1_500)
  t.teardown(() => sidecar.stop())
  const denied = await sidecar.waitForLog('kube_access_denied')
  t.like(denied, { verb: 'list,watch', resource: 'endpointslices.discovery.k8s.io', namespace: NS })
  t.is((await fetch(`${sidecar.url}/healthz`)).status, 200)
  const startedAt = performance.now()
  const summary = (await (await fetch(`${sidecar.url}/prestop`)).json()) as { outcome: string; phases: { endpoints: { status: string } } }
  const ms = performance.now() - startedAt
  t.is(summary.outcome, 'timeout')
  t.not(summary.phases.endpoints.status, 'ok')
  t.true(ms < 1_500 + 3_000, `answered after ${Math.round(ms)}ms`)
  t.is(sidecar.logs.filter((l) => l.event === 'kube_access_denied').length, 1)
})

test('access check: a 429 with Retry-After delays the next attempt by at least that long (the shared retry helper)', async (t) => {
  const { kube, lines, run } = await accessCheck(t)
  kube.fault(
    { kind: 'status', status: 429, body: 'Too many requests, please try again later.\n', headers: { 'retry-after': '1' } },
    'create',
  )
  t.deepEqual(await run(), { result: 'allowed', via: 'review' })
  const reviews = kube.requests.filter((r) => r.verb === 'create')
  t.is(reviews.length, 3, 'the 429, then both verbs')
  t.true(reviews[1]!.at - reviews[0]!.at >= 950, `retried after ${Math.round(reviews[1]!.at - reviews[0]!.at)}ms`)
  t.deepEqual(
    lines.map((l) => l.event),
    ['kube_access_ok'],
  )
})

test('access check: an unreachable API is logged with the error as {name, code, message}', async (t) => {
  const { kube, lines, run } = await accessCheck(t)
  for (let i = 0; i < 3; i++) kube.fault({ kind: 'status', status: 503, body: 'unavailable' }, 'create')
  await run()
  t.like(lines[0], { event: 'kube_access_unchecked', error: { name: 'UpstreamError', code: 'UPSTREAM_HTTP_STATUS' } })
  t.regex(String((lines[0]!.error as { message?: unknown }).message), /status 503: unavailable/)
})
