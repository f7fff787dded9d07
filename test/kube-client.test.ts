import { readFileSync } from 'node:fs'
import test from 'ava'
import { systemClock } from '../src/clock.ts'
import { UpstreamError } from '../src/errors.ts'
import { createKubeClient, isExpired } from '../src/kube/client.ts'
import { parseRetryAfter } from '../src/kube/request.ts'
import { createFileTokenSource, staticToken, TOKEN_MAX_AGE_MS } from '../src/kube/token.ts'
import type { SliceEvent } from '../src/kube/types.ts'
import { createFetch } from '../src/transport.ts'
import { USER_AGENT } from '../src/version.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { type FakeKubeOptions, ROGUE_CA_FILE, startFakeKube } from '../sim/fakes/fake-kube.ts'
import { endpointSlice, READY, TERMINATING } from '../sim/fakes/fixtures.ts'

const never = new AbortController().signal

async function setup(
  t: import('ava').ExecutionContext,
  options: FakeKubeOptions & { token?: string; caFile?: string; pageSize?: number; requestTimeoutMs?: number } = {},
) {
  const kube = await startFakeKube(options)
  const fetch = createFetch({ ca: readFileSync(options.caFile ?? kube.caFile, 'utf8') })
  t.teardown(async () => {
    await fetch.close()
    await kube.close()
  })
  const calls: Array<[string, number | 'error']> = []
  const client = createKubeClient({
    apiUrl: kube.url,
    namespace: 'default',
    fetch,
    token: staticToken(options.token ?? 'test-token'),
    clock: systemClock,
    userAgent: USER_AGENT,
    onRequest: (verb, code) => calls.push([verb, code]),
    ...(options.pageSize ? { pageSize: options.pageSize } : {}),
    ...(options.requestTimeoutMs ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
  })
  return { kube, client, calls }
}

test('LIST sends the bearer token and our User-Agent, and reads items that carry no kind', async (t) => {
  const { kube, client, calls } = await setup(t)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...READY }] }))
  const list = await client.listEndpointSlices({}, never)
  t.is(list.items.length, 1)
  t.is(list.items[0]!.kind, undefined, 'the fake strips kind like a real server')
  t.is(list.items[0]!.metadata?.name, 'web-aaaaa')
  t.is(list.resourceVersion, String(kube.resourceVersion))
  t.is(kube.requests[0]!.authorization, 'Bearer test-token')
  t.regex(kube.requests[0]!.userAgent ?? '', /^drain-coordinator\/\d+\.\d+\.\d+/)
  t.deepEqual(calls, [['list', 200]])
})

test('LIST follows continue tokens through every page', async (t) => {
  const { kube, client } = await setup(t, { pageSize: 2 })
  for (let i = 0; i < 5; i++) kube.upsert(endpointSlice({ name: `web-${i}aaaa`, endpoints: [{ ip: `10.0.0.${i + 1}`, ...READY }] }))
  const list = await client.listEndpointSlices({}, never)
  t.is(list.items.length, 5)
  t.deepEqual(
    kube.requests.map((r) => r.query.get('limit')),
    ['2', '2', '2'],
  )
  t.is(kube.requests[1]!.query.has('continue'), true)
})

test('LIST starts over when the continue token expired (HTTP 410)', async (t) => {
  const { kube, client } = await setup(t, { pageSize: 1 })
  for (let i = 0; i < 3; i++) kube.upsert(endpointSlice({ name: `web-${i}aaaa`, endpoints: [{ ip: `10.0.0.${i + 1}`, ...READY }] }))
  kube.expireContinueTokens(1)
  const list = await client.listEndpointSlices({}, never)
  t.deepEqual(
    list.items.map((s) => s.metadata?.name),
    ['web-0aaaa', 'web-1aaaa', 'web-2aaaa'],
    'no page twice, none missing',
  )
  const pages = kube.requests.map((r) => (r.query.has('continue') ? 'next' : 'first'))
  t.deepEqual(pages, ['first', 'next', 'first', 'next', 'next'], 'restarted from the first page after the 410')
})

test('the label selector reaches the server', async (t) => {
  const { kube, client } = await setup(t)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', service: 'web', endpoints: [{ ip: '10.0.0.1', ...READY }] }))
  kube.upsert(endpointSlice({ name: 'api-aaaaa', service: 'api', endpoints: [{ ip: '10.0.0.1', ...READY }] }))
  const list = await client.listEndpointSlices({ labelSelector: 'kubernetes.io/service-name in (web)' }, never)
  t.deepEqual(
    list.items.map((s) => s.metadata?.name),
    ['web-aaaaa'],
  )
})

test('a field selector narrows a WATCH to one slice, as the API server does', async (t) => {
  const { kube, client } = await setup(t)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...READY }] }))
  kube.upsert(endpointSlice({ name: 'web-bbbbb', endpoints: [{ ip: '10.0.0.2', ...READY }] }))
  const from = String(kube.resourceVersion)
  const names: string[] = []
  const watching = (async () => {
    for await (const event of client.watchEndpointSlices({ resourceVersion: from, fieldSelector: 'metadata.name=web-bbbbb' }, never)) {
      if (event.type === 'ADDED' || event.type === 'MODIFIED') names.push(event.slice.metadata?.name ?? '')
      break
    }
  })()
  await kube.untilWatching()
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...TERMINATING }] }))
  kube.upsert(endpointSlice({ name: 'web-bbbbb', endpoints: [{ ip: '10.0.0.2', ...TERMINATING }] }))
  await watching
  t.deepEqual(names, ['web-bbbbb'])
  t.is(kube.requests.at(-1)!.query.get('fieldSelector'), 'metadata.name=web-bbbbb')
})

test('without any 401 the token file is re-read once the cached token is 50 s old, so rotation never waits for a failure', async (t) => {
  const clock = new FakeClock()
  let content = 'first-token\n'
  const reads: string[] = []
  const tokens = createFileTokenSource('/var/run/secrets/token', {
    clock,
    readFile: async (path) => {
      reads.push(path)
      return content
    },
  })
  t.is(await tokens.get(), 'first-token')
  content = 'rotated-token\n'
  await clock.advance(TOKEN_MAX_AGE_MS - 1)
  t.is(await tokens.get(), 'first-token', 'cached while younger than the limit')
  t.is(reads.length, 1)
  await clock.advance(1)
  t.is(await tokens.get(), 'rotated-token')
  t.deepEqual(reads, ['/var/run/secrets/token', '/var/run/secrets/token'])
  t.is(TOKEN_MAX_AGE_MS, 50_000, 'at least every minute, as the title says')
})

test('a request our own caller aborts (the drain ended) is not counted as an API error; one the server never answers is', async (t) => {
  const { kube, client, calls } = await setup(t, { requestTimeoutMs: 1_000 })
  kube.fault({ kind: 'hang' }, 'list')
  const controller = new AbortController()
  const listing = client.listEndpointSlices({}, controller.signal)
  // In flight: the server has the request (and will never answer it).
  while (kube.countRequests('list') === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  const reason = new Error('drain over')
  controller.abort(reason)
  t.is(await listing.catch((error: unknown) => error), reason)
  t.deepEqual(calls, [])
  kube.fault({ kind: 'hang' }, 'list')
  await t.throwsAsync(client.listEndpointSlices({}, never), { instanceOf: UpstreamError, message: /no answer within 1000ms/ })
  t.deepEqual(calls, [['list', 'error']])
})

test('a LIST body that stops coming is ended by the request timeout, and says so (not "connection lost")', async (t) => {
  const { kube, client, calls } = await setup(t, { requestTimeoutMs: 1_000 })
  kube.fault({ kind: 'stall' }, 'list')
  const error = await t.throwsAsync(client.listEndpointSlices({}, never), { instanceOf: UpstreamError })
  t.regex(String(error?.message), /no answer within 1000ms/)
  t.notRegex(String(error?.message), /connection lost/)
  t.deepEqual(calls, [['list', 200]])
})

test('a 401 with a token that stays wrong fails with the Status message, after one retry', async (t) => {
  const { kube, client } = await setup(t, { token: 'wrong' })
  const error = await t.throwsAsync(client.listEndpointSlices({}, never), { instanceOf: UpstreamError })
  t.is(error?.status, 401)
  t.regex(
    error!.message,
    /^LIST https:\/\/127\.0\.0\.1:\d+\/apis\/discovery\.k8s\.io\/v1\/namespaces\/default\/endpointslices\?limit=25 failed with status 401: Unauthorized$/,
  )
  t.is(kube.requests.length, 2)
  t.false(error!.message.includes('wrong'), 'the token never appears in errors')
})

test('a 403 Status names the verb and resource', async (t) => {
  const { kube, client } = await setup(t)
  kube.forbid('list')
  const error = await t.throwsAsync(client.listEndpointSlices({}, never), { instanceOf: UpstreamError })
  t.is(error?.status, 403)
  t.is(error?.reason, 'Forbidden')
  t.regex(error!.message, /cannot list resource "endpointslices" in API group "discovery.k8s.io" in the namespace "default"/)
})

test('an APF 429 with a plain-text body reports its Retry-After', async (t) => {
  const { kube, client } = await setup(t)
  kube.tooManyRequests(3, 'list')
  const error = await t.throwsAsync(client.listEndpointSlices({}, never), { instanceOf: UpstreamError })
  t.is(error?.status, 429)
  t.is(error?.retryAfterMs, 3_000)
  t.regex(error!.message, /Too many requests, please try again later\.$/)
})

test('malformed JSON in a LIST is an error naming the URL, not a crash', async (t) => {
  const { kube, client } = await setup(t)
  kube.fault({ kind: 'raw', body: '{"kind":"EndpointSliceList","items":[' }, 'list')
  await t.throwsAsync(client.listEndpointSlices({}, never), { instanceOf: UpstreamError, message: /LIST .* body is not JSON/ })
})

test('a 200 that is not a list of slices (a Status, an empty object) is an error, never "no slices"', async (t) => {
  const { kube, client } = await setup(t)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...READY }] }))
  for (const body of [
    '{"kind":"Status","apiVersion":"v1","status":"Success"}',
    '{}',
    '{"kind":"EndpointSliceList","metadata":{"resourceVersion":"7"}}',
    '{"kind":"EndpointSliceList","metadata":{},"items":[]}',
  ]) {
    kube.fault({ kind: 'raw', body }, 'list')
    await t.throwsAsync(client.listEndpointSlices({}, never), { message: /not an EndpointSliceList/ }, body)
  }
  // The same server's real answer still reads.
  t.is((await client.listEndpointSlices({}, never)).items.length, 1)
})

test('a hung API server fails the request after its timeout', async (t) => {
  const { kube, client } = await setup(t, { requestTimeoutMs: 300 })
  kube.fault({ kind: 'hang' }, 'list')
  await t.throwsAsync(client.listEndpointSlices({}, never), { instanceOf: UpstreamError, message: /no answer within 300ms/ })
})

test('WATCH streams events from the resourceVersion, with bookmarks allowed', async (t) => {
  const { kube, client } = await setup(t)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...READY }] }))
  const from = String(kube.resourceVersion)
  const controller = new AbortController()
  const events: SliceEvent[] = []
  const watching = (async () => {
    for await (const event of client.watchEndpointSlices({ resourceVersion: from }, controller.signal)) {
      events.push(event)
      if (events.length === 3) break
    }
  })()
  await kube.untilWatching()
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...TERMINATING }] }))
  kube.bookmark()
  kube.remove('web-aaaaa')
  await watching
  t.deepEqual(
    events.map((e) => e.type),
    ['MODIFIED', 'BOOKMARK', 'DELETED'],
  )
  t.like(events[0], { type: 'MODIFIED', slice: { kind: 'EndpointSlice' } }, 'watch events carry kind')
  const query = kube.requests.at(-1)!.query
  t.is(query.get('watch'), '1')
  t.is(query.get('allowWatchBookmarks'), 'true')
  t.is(query.get('resourceVersion'), from)
  await kube.untilWatching(0)
})

test('WATCH from a too-old resourceVersion ends with the 410 of the ERROR event the server sends with HTTP 200', async (t) => {
  const { kube, client } = await setup(t)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...READY }] }))
  const old = String(kube.resourceVersion)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...TERMINATING }] }))
  kube.compact()
  const events: SliceEvent[] = []
  const error = await t.throwsAsync(async () => {
    for await (const event of client.watchEndpointSlices({ resourceVersion: old }, never)) events.push(event)
  })
  t.is(events.length, 0)
  t.like(error, { status: 410, reason: 'Expired' })
  t.true(isExpired(error))
  t.true(isExpired(new UpstreamError('x', { status: 410 })))
})

test('trusting the rogue CA instead also refuses the real server (the CA file is what decides)', async (t) => {
  const { client } = await setup(t, { caFile: ROGUE_CA_FILE })
  await t.throwsAsync(client.listEndpointSlices({}, never), { instanceOf: UpstreamError })
})

test('an IPv6 API server address works when bracketed', async (t) => {
  const { client, kube } = await setup(t, { host: '::1' })
  t.regex(kube.url, /^https:\/\/\[::1\]:\d+$/)
  await t.notThrowsAsync(client.listEndpointSlices({}, never))
})

test('Retry-After is read in seconds or as an HTTP date, and capped at a minute', (t) => {
  const now = Date.parse('2026-11-25T12:00:00Z')
  t.is(parseRetryAfter('3', now), 3_000)
  t.is(parseRetryAfter('Wed, 25 Nov 2026 12:00:10 GMT', now), 10_000)
  t.is(parseRetryAfter('3600', now), 60_000)
  t.is(parseRetryAfter('soon', now), undefined)
  t.is(parseRetryAfter(null, now), undefined)
})
