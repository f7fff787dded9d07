import test from 'ava'
import type { PodIdentity } from '../src/config.ts'
import type { DrainSummary } from '../src/drain.ts'
import { waitForEndpointRemoval } from '../src/kube/endpoint-wait.ts'
import { metricValue, testCoordinator } from './helpers/coordinator.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { endpointSlice, READY, TERMINATING } from '../sim/fakes/fixtures.ts'
import { createMemoryKube } from './helpers/memory-kube.ts'
import { type Script, scriptedFetch } from './helpers/scripted-fetch.ts'

const pod: PodIdentity = { name: 'web-1', namespace: 'default', uid: 'uid-1', ips: ['10.0.0.1'] }
const me = { ip: '10.0.0.1', podName: 'web-1', uid: 'uid-1' }

type Options = {
  timeoutMs?: number
  settleMs?: number
  app?: Script | 'unset'
  envoy?: Script | 'unset'
  kube?: 'unset'
}

function harness(options: Options = {}) {
  const clock = new FakeClock()
  const kube = createMemoryKube()
  const app = scriptedFetch(options.app === 'unset' ? undefined : options.app)
  const envoy = scriptedFetch(options.envoy === 'unset' ? undefined : options.envoy)
  const { coordinator, log, registry } = testCoordinator({
    clock,
    appFetch: app.fetch,
    envoyFetch: envoy.fetch,
    waitForEndpoints:
      options.kube === 'unset'
        ? undefined
        : (signal) => waitForEndpointRemoval({ kube: kube.client, clock, log, pod, mode: 'watch', pollIntervalMs: 1_000 }, signal),
    config: {
      appShutdownUrl: options.app === 'unset' ? undefined : 'http://127.0.0.1:8080/shutdown',
      envoyAdminUrl: options.envoy === 'unset' ? undefined : 'http://127.0.0.1:9901',
      settleMs: options.settleMs ?? 5_000,
      timeoutMs: options.timeoutMs ?? 20_000,
      sideCallTimeoutMs: 2_000,
    },
  })
  let answered: DrainSummary | undefined
  const start = (trigger: 'hook' | 'signal' = 'hook') => {
    const promise = coordinator.start(trigger, 'kube-lifecycle/1.33')
    void promise.then((summary) => (answered = summary))
    return promise
  }
  return { clock, log, registry, kube, app, envoy, coordinator, start, answered: () => answered }
}

const ready = (h: ReturnType<typeof harness>) => h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...READY }] }))
const terminating = (h: ReturnType<typeof harness>) =>
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...TERMINATING }] }))

test('readiness flips the instant a drain starts', async (t) => {
  const h = harness()
  ready(h)
  t.is(h.coordinator.state, 'serving')
  void h.start()
  t.is(h.coordinator.state, 'draining')
  await h.clock.advance(20_000)
  t.is(h.coordinator.state, 'drained')
})

test('the hook is answered only after the endpoint leaves every slice, plus the settle time', async (t) => {
  const h = harness({ settleMs: 5_000 })
  ready(h)
  const answer = h.start()
  await h.clock.advance(3_000)
  t.is(h.answered(), undefined, 'still held while the endpoint is ready')
  terminating(h)
  await h.clock.advance(4_999)
  t.is(h.answered(), undefined, 'still settling')
  await h.clock.advance(1)
  const summary = await answer
  t.is(summary.outcome, 'completed')
  t.is(summary.durationSeconds, 8)
  t.like(summary.phases, { endpoints: { status: 'ok', durationSeconds: 3 }, settle: { status: 'ok', durationSeconds: 5 } })
})

test('the app shutdown URL and Envoy drain are POSTed at once, without delaying the endpoint wait', async (t) => {
  const h = harness({ app: { kind: 'hang' }, envoy: { kind: 'hang' } })
  ready(h)
  void h.start()
  await h.clock.settle()
  t.deepEqual(h.app.calls, [{ url: 'http://127.0.0.1:8080/shutdown', method: 'POST' }])
  t.deepEqual(h.envoy.calls, [{ url: 'http://127.0.0.1:9901/drain_listeners?inboundonly&graceful', method: 'POST' }])
  t.true(
    h.kube.calls.some((c) => c.verb === 'watch'),
    'the endpoint wait runs while both calls hang',
  )
})

test('a hung app or Envoy call is cut off after its own short timeout and recorded as failed', async (t) => {
  const h = harness({ app: { kind: 'hang' }, envoy: { kind: 'status', status: 503 } })
  terminating(h)
  const summary = await (async () => {
    const answer = h.start()
    await h.clock.advance(5_000)
    return answer
  })()
  t.is(summary.outcome, 'completed')
  t.like(summary.phases.app, { status: 'failed', durationSeconds: 2 })
  t.regex(summary.phases.app.error!.message, /app shutdown: POST http:\/\/127.0.0.1:8080\/shutdown got no answer within 2000ms/)
  t.like(summary.phases.envoy, { status: 'failed' })
  t.regex(summary.phases.envoy.error!.message, /Envoy drain: POST .* failed with status 503/)
  t.is(await metricValue(h.registry, 'drain_coordinator_phase_failures_total', { phase: 'app' }), 1)
  t.is(await metricValue(h.registry, 'drain_coordinator_phase_failures_total', { phase: 'envoy' }), 1)
  t.regex(
    await h.registry.metrics(),
    /drain_coordinator_phase_duration_seconds_sum\{phase="app"\} 2\n/,
    'a failed phase still shows how long it took',
  )
})

test('a refused app connection is logged with its URL and the drain goes on', async (t) => {
  const h = harness({ app: { kind: 'refused' } })
  terminating(h)
  const answer = h.start()
  await h.clock.advance(5_000)
  t.is((await answer).outcome, 'completed')
  const line = h.log.lines.find((l) => l.event === 'phase_failed' && l.phase === 'app')
  t.regex((line?.error as { message: string }).message, /app shutdown: POST http:\/\/127.0.0.1:8080\/shutdown failed: fetch failed/)
})

test('unset app and Envoy URLs are skipped, not failed', async (t) => {
  const h = harness({ app: 'unset', envoy: 'unset' })
  terminating(h)
  const answer = h.start()
  await h.clock.advance(5_000)
  const summary = await answer
  t.deepEqual(summary.phases.app, { status: 'skipped' })
  t.deepEqual(summary.phases.envoy, { status: 'skipped' })
  t.deepEqual(h.app.calls, [])
})

test('without an API server the endpoint wait is skipped and only the settle applies', async (t) => {
  const h = harness({ kube: 'unset', settleMs: 3_000 })
  const answer = h.start()
  await h.clock.advance(3_000)
  const summary = await answer
  t.is(summary.outcome, 'completed')
  t.is(summary.durationSeconds, 3)
  t.deepEqual(summary.phases.endpoints, { status: 'skipped' })
})

test('at DRAIN_TIMEOUT every waiting hook is answered with outcome "timeout"', async (t) => {
  const h = harness({ timeoutMs: 20_000 })
  ready(h)
  const first = h.start('hook')
  const second = h.start('hook')
  await h.clock.advance(19_999)
  t.is(h.answered(), undefined)
  await h.clock.advance(1)
  const [a, b] = await Promise.all([first, second])
  t.is(a.outcome, 'timeout')
  t.is(a.durationSeconds, 20)
  t.is(a, b, 'both callers get the same summary')
  t.like(a.phases, { endpoints: { status: 'cancelled' }, settle: { status: 'cancelled' } })
  t.is(await metricValue(h.registry, 'drain_coordinator_drains_total', { outcome: 'timeout' }), 1)
  t.is(await metricValue(h.registry, 'drain_coordinator_phase_failures_total', { phase: 'endpoints' }), 1)
})

test('the deadline also cuts the settle short', async (t) => {
  const h = harness({ timeoutMs: 6_000, settleMs: 5_000 })
  ready(h)
  const answer = h.start()
  await h.clock.advance(3_000)
  terminating(h)
  await h.clock.advance(3_000)
  const summary = await answer
  t.is(summary.outcome, 'timeout')
  t.is(summary.durationSeconds, 6)
  t.like(summary.phases, { endpoints: { status: 'ok' }, settle: { status: 'cancelled' } })
})

test('a second /prestop joins the running drain instead of starting another', async (t) => {
  const h = harness()
  ready(h)
  const first = h.start('hook')
  await h.clock.advance(1_000)
  const second = h.start('signal')
  terminating(h)
  await h.clock.advance(5_000)
  t.is(await first, await second)
  t.is((await first).trigger, 'hook')
  t.is(h.app.calls.length, 1, 'the app is told once')
  t.is(h.log.events().filter((e) => e === 'drain_started').length, 1)
})

test('a hook after the drain finished is answered at once with the same summary', async (t) => {
  const h = harness({ settleMs: 1_000 })
  terminating(h)
  const first = h.start()
  await h.clock.advance(1_000)
  const summary = await first
  t.is(await h.start(), summary)
})

test('metrics follow the drain: draining gauge, outcome counter, duration and phase histograms', async (t) => {
  const h = harness({ settleMs: 2_000 })
  ready(h)
  const answer = h.start()
  await h.clock.settle()
  t.is(await metricValue(h.registry, 'drain_coordinator_draining'), 1)
  terminating(h)
  await h.clock.advance(2_000)
  await answer
  t.is(await metricValue(h.registry, 'drain_coordinator_draining'), 0)
  t.is(await metricValue(h.registry, 'drain_coordinator_drains_total', { outcome: 'completed' }), 1)
  const text = await h.registry.metrics()
  t.regex(text, /drain_coordinator_drain_duration_seconds_sum\{outcome="completed"\} 2/)
  t.regex(text, /drain_coordinator_phase_duration_seconds_count\{phase="settle"\} 1/)
  t.regex(text, /drain_coordinator_phase_duration_seconds_count\{phase="app"\} 1/)
})

test('log lines tell the story: started with the caller, each phase, finished with the outcome', async (t) => {
  const h = harness({ settleMs: 1_000 })
  terminating(h)
  const answer = h.start()
  await h.clock.advance(1_000)
  await answer
  const started = h.log.lines.find((l) => l.event === 'drain_started')
  t.like(started, { by: 'hook', userAgent: 'kube-lifecycle/1.33' })
  const phases = h.log.lines.filter((l) => l.event === 'phase_finished').map((l) => l.phase)
  t.deepEqual([...phases].sort(), ['app', 'endpoints', 'envoy', 'settle'])
  t.like(h.log.lines.at(-1), { event: 'drain_finished', outcome: 'completed' })
})

test('an endpoint wait that throws proves nothing: the hook is held to the deadline and the outcome is timeout', async (t) => {
  const clock = new FakeClock()
  const { coordinator, log } = testCoordinator({
    clock,
    waitForEndpoints: async () => {
      throw new RangeError('Maximum call stack size exceeded')
    },
    config: { settleMs: 1_000, timeoutMs: 20_000 },
  })
  let answered: DrainSummary | undefined
  const answer = coordinator.start('hook').then((summary) => (answered = summary))
  await clock.advance(19_999)
  t.is(answered, undefined, 'still held after the settle time would have passed')
  await clock.advance(1)
  await answer
  t.is(answered?.outcome, 'timeout')
  t.is(answered?.phases.endpoints.status, 'failed')
  t.is(answered?.phases.settle.status, 'cancelled')
  t.true(log.events().includes('drain_held_without_evidence'))
})

test('a bug in the drain sequence itself never answers a hook early: held to the deadline, outcome timeout', async (t) => {
  const clock = new FakeClock()
  const { coordinator, log } = testCoordinator({
    clock,
    waitForEndpoints: async () => ({ slicesAtStart: 1, mode: 'watch' }),
    // Throws outside any phase's own handling: recording the phase's end fails.
    metrics: (real) => ({
      ...real,
      phaseFinished() {
        throw new RangeError('Maximum call stack size exceeded')
      },
    }),
    config: { settleMs: 1_000, timeoutMs: 20_000 },
  })
  let answered: DrainSummary | undefined
  const answer = coordinator.start('hook').then((summary) => (answered = summary))
  await clock.advance(19_999)
  t.is(answered, undefined, 'still held')
  await clock.advance(1)
  await answer
  t.is(answered!.outcome, 'timeout')
  t.true(log.events().includes('drain_held_without_evidence'))
})

test('a drain that breaks with an error that cannot even be printed still holds the hook to DRAIN_TIMEOUT', async (t) => {
  const clock = new FakeClock()
  // A thrown value whose name and message throw when read or turned into text: rendering it must not end the hold.
  const unprintable = Object.create(Error.prototype, {
    name: { get: () => Object.create(null) },
    message: {
      get: () => {
        throw new Error('no message for you')
      },
    },
  }) as Error
  const { coordinator } = testCoordinator({
    clock,
    waitForEndpoints: async () => ({ slicesAtStart: 1, mode: 'watch' }),
    metrics: (real) => ({
      ...real,
      drainStarted() {
        throw unprintable
      },
    }),
    config: { settleMs: 1_000, timeoutMs: 20_000 },
  })
  let answered: DrainSummary | undefined
  let failed: unknown
  const answer = coordinator.start('hook').then(
    (summary) => (answered = summary),
    (error: unknown) => (failed = error),
  )
  await clock.advance(19_999)
  t.is(answered, undefined, 'still held')
  t.is(failed, undefined, 'not answered with an error either')
  await clock.advance(1)
  await answer
  t.is(answered!.outcome, 'timeout')
})

test('a drain that breaks before any phase still holds the hook for DRAIN_TIMEOUT and answers timeout', async (t) => {
  const clock = new FakeClock()
  const { coordinator } = testCoordinator({
    clock,
    waitForEndpoints: async () => ({ slicesAtStart: 1, mode: 'watch' }),
    metrics: (real) => ({
      ...real,
      drainStarted() {
        throw new Error('out of memory in a label set')
      },
    }),
    config: { settleMs: 1_000, timeoutMs: 20_000 },
  })
  let answered: DrainSummary | undefined
  const answer = coordinator.start('hook').then((summary) => (answered = summary))
  await clock.advance(19_999)
  t.is(answered, undefined, 'still held')
  t.is(coordinator.state, 'draining')
  await clock.advance(1)
  await answer
  t.is(answered!.outcome, 'timeout')
  t.is(coordinator.state, 'drained')
})
