import test from 'ava'
import { Registry } from 'prom-client'
import { createMetrics } from '../src/metrics.ts'
import { createReadinessCheck } from '../src/readiness.ts'
import { createServerApp } from '../src/server.ts'
import { testCoordinator } from './helpers/coordinator.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { type Script, scriptedFetch } from './helpers/scripted-fetch.ts'

function harness({ upstream, hookToken }: { upstream?: Script; hookToken?: string } = {}) {
  const clock = new FakeClock()
  const side = scriptedFetch(upstream)
  const { coordinator, log, registry, metrics } = testCoordinator({ clock, config: { settleMs: 1_000, timeoutMs: 10_000 } })
  const readiness = createReadinessCheck({
    state: () => coordinator.state,
    upstream: upstream === undefined ? undefined : 'http://127.0.0.1:8080/ready',
    fetch: side.fetch,
    clock,
    timeoutMs: 1_000,
  })
  const app = createServerApp({
    coordinator,
    readiness,
    metrics,
    log,
    hookToken: hookToken === undefined ? undefined : async () => hookToken,
  })
  return { clock, log, app, coordinator, side, registry }
}

test('GET /ready answers 200 while serving and 503 from the instant a drain starts, for good', async (t) => {
  const h = harness()
  t.is((await h.app.request('/ready')).status, 200)
  const hook = h.app.request('/prestop')
  await h.clock.settle()
  const during = await h.app.request('/ready')
  t.is(during.status, 503)
  t.like(await during.json(), { ready: false, state: 'draining', reason: 'draining' })
  await h.clock.advance(1_000)
  t.is((await hook).status, 200)
  const after = await h.app.request('/ready')
  t.is(after.status, 503)
  // The reason follows the state: a drain that is over is not still 'draining'.
  t.like(await after.json(), { ready: false, state: 'drained', reason: 'drained' })
})

test('GET /ready follows DRAIN_READINESS_UPSTREAM while serving', async (t) => {
  const h = harness({ upstream: { kind: 'status', status: 200 } })
  t.is((await h.app.request('/ready')).status, 200)
  h.side.set({ kind: 'status', status: 500 })
  const failing = await h.app.request('/ready')
  t.is(failing.status, 503)
  t.like(await failing.json(), { reason: 'upstream answered 500' })
  h.side.set({ kind: 'refused' })
  t.is((await h.app.request('/ready')).status, 503)
})

test('a hung readiness upstream answers 503 after the short timeout', async (t) => {
  const h = harness({ upstream: { kind: 'hang' } })
  const probe = h.app.request('/ready')
  await h.clock.advance(1_000)
  const response = await probe
  t.is(response.status, 503)
  t.regex(((await response.json()) as { reason: string }).reason, /no answer within 1000ms/)
})

test('once draining, /ready answers 503 without asking the upstream', async (t) => {
  const h = harness({ upstream: { kind: 'status', status: 200 } })
  void h.app.request('/prestop')
  await h.clock.settle()
  const calls = h.side.calls.length
  t.is((await h.app.request('/ready')).status, 503)
  t.is(h.side.calls.length, calls)
})

test('GET and POST /prestop answer with the JSON summary once the drain is done', async (t) => {
  const h = harness()
  const get = h.app.request('/prestop', { headers: { 'user-agent': 'kube-lifecycle/1.33' } })
  const post = h.app.request('/prestop', { method: 'POST' })
  await h.clock.advance(1_000)
  const [a, b] = await Promise.all([get, post])
  t.is(a.status, 200)
  t.is(b.status, 200)
  const summary = await a.json()
  t.like(summary, { outcome: 'completed', trigger: 'hook', durationSeconds: 1, phases: { settle: { status: 'ok' } } })
  t.deepEqual(await b.json(), summary)
  t.like(
    h.log.lines.find((l) => l.event === 'drain_started'),
    { userAgent: 'kube-lifecycle/1.33' },
  )
})

test('GET /healthz answers 200 while serving and while draining', async (t) => {
  const h = harness()
  t.is((await h.app.request('/healthz')).status, 200)
  void h.app.request('/prestop')
  await h.clock.settle()
  const response = await h.app.request('/healthz')
  t.is(response.status, 200)
  t.like(await response.json(), { healthy: true, state: 'draining' })
})

test('GET /metrics serves the Prometheus text format', async (t) => {
  const h = harness()
  const response = await h.app.request('/metrics')
  t.is(response.status, 200)
  t.regex(response.headers.get('content-type') ?? '', /^text\/plain; version=0.0.4/)
  t.regex(await response.text(), /^drain_coordinator_draining 0$/m)
})

test('a HEAD of /metrics is not taken for the scrape the exit waits for', async (t) => {
  const h = harness()
  const seen: boolean[] = []
  const app = createServerApp({
    coordinator: h.coordinator,
    readiness: async () => ({ ready: true, reason: 'x' }),
    metrics: createMetrics(new Registry(), { version: 't' }),
    log: h.log,
    hookToken: undefined,
    scrapes: { scraped: (drained) => seen.push(drained) },
  })
  t.is((await app.request('/metrics', { method: 'HEAD' })).status, 200)
  t.deepEqual(seen, [])
  await app.request('/metrics')
  t.deepEqual(seen, [false])
})

test('unknown paths get 404 and wrong methods 405, both with a short JSON error', async (t) => {
  const h = harness()
  const missing = await h.app.request('/prestopp')
  t.is(missing.status, 404)
  t.like(await missing.json(), { error: 'not found' })
  const wrong = await h.app.request('/ready', { method: 'DELETE' })
  t.is(wrong.status, 405)
  t.is(wrong.headers.get('allow'), 'GET, HEAD')
  t.like(await wrong.json(), { error: 'method not allowed' })
  const put = await h.app.request('/prestop', { method: 'PUT' })
  t.is(put.status, 405)
  const head = await h.app.request('/prestop', { method: 'HEAD' })
  t.is(head.status, 405)
  t.is(head.headers.get('allow'), 'GET, POST')
  t.is(h.coordinator.state, 'serving', 'a wrong method (HEAD too) starts nothing')
})

test('with a hook token, /prestop without the X-Drain-Token header gets 401 and starts nothing', async (t) => {
  const h = harness({ hookToken: 'correct-horse-battery' })
  const denied = await h.app.request('/prestop')
  t.is(denied.status, 401)
  const wrong = await h.app.request('/prestop', { headers: { 'x-drain-token': 'correct-horse-batterY' } })
  t.is(wrong.status, 401)
  t.is(h.coordinator.state, 'serving')
  t.regex(await h.registry.metrics(), /drain_coordinator_hook_requests_total\{result="unauthorized"\} 2/)
  const allowed = h.app.request('/prestop', { headers: { 'x-drain-token': 'correct-horse-battery' } })
  await h.clock.advance(1_000)
  t.is((await allowed).status, 200)
  t.false(JSON.stringify(h.log.lines).includes('correct-horse'), 'the token never reaches the logs')
})

test('POST /prestop reads its whole body before a drain starts: a body that breaks off gets 400, one over 64 KiB 413, and nothing starts', async (t) => {
  const h = harness()
  const broken = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array(10))
      controller.error(new Error('connection reset'))
    },
  })
  const cut = await h.app.request('/prestop', { method: 'POST', body: broken, duplex: 'half' } as RequestInit)
  t.is(cut.status, 400)
  t.is(cut.headers.get('connection'), 'close')
  const big = await h.app.request('/prestop', { method: 'POST', body: new Uint8Array(64 * 1024 + 1) })
  t.is(big.headers.get('connection'), null, 'Node reads the rest and drops it, so a client still sending sees the answer')
  t.is(big.status, 413)
  t.is(h.coordinator.state, 'serving')
  t.regex(await h.registry.metrics(), /drain_coordinator_hook_requests_total\{result="bad_request"\} 2/)
  const held = h.app.request('/prestop', { method: 'POST', body: new Uint8Array(64 * 1024) })
  await h.clock.advance(1_000)
  t.is((await held).status, 200)
})
