/**
 * Envoy admin and the app's shutdown URL misbehaving: down, hanging, 5xx, slow. Promise: neither delays the
 * endpoint wait or the release, each failure is reported as what it was, and the deadline holds. Real HTTP
 * (undici transport against the fakes) and the real clock, with short timeouts and generous margins.
 */
import test from 'ava'
import { systemClock } from '../src/clock.ts'
import type { DrainSummary } from '../src/drain.ts'
import { createFetch } from '../src/transport.ts'
import { metricValue, testCoordinator } from './helpers/coordinator.ts'
import { startFakeApp } from './helpers/fake-app.ts'
import { startFakeEnvoy, type Mode } from '../sim/fakes/fake-envoy.ts'
import { freePort, startSidecar } from '../sim/fakes/sidecar-process.ts'

type Peers = {
  envoy?: Mode | 'down'
  app?: 'ok' | 'hang' | 500 | 'down' | { slowMs: number }
  endpointsMs?: number | 'never'
  sideCallTimeoutMs?: number
  timeoutMs?: number
  settleMs?: number
}

async function drain(t: { teardown: (fn: () => unknown) => void }, peers: Peers) {
  const envoy = await startFakeEnvoy()
  const app = await startFakeApp()
  t.teardown(() => envoy.close())
  t.teardown(() => app.close())
  if (peers.envoy && peers.envoy !== 'down') envoy.setMode(peers.envoy)
  if (peers.app === 'hang') app.setHang(true)
  if (typeof peers.app === 'number') app.setShutdownStatus(peers.app)
  if (typeof peers.app === 'object') app.setShutdownDelay(peers.app.slowMs)
  const appShutdownUrl = peers.app === 'down' ? `http://127.0.0.1:${await freePort()}/shutdown` : app.shutdownUrl
  const envoyAdminUrl = peers.envoy === 'down' ? `http://127.0.0.1:${await freePort()}` : envoy.url
  const fetch = createFetch({ bodyTimeoutMs: 10_000 })
  t.teardown(() => fetch.close())
  let endpointsStartedAt: number | undefined
  const { coordinator, log, registry } = testCoordinator({
    appFetch: fetch,
    envoyFetch: fetch,
    waitForEndpoints: async (signal) => {
      endpointsStartedAt = performance.now()
      if (peers.endpointsMs === 'never')
        await new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))
      // 1 s by default: long enough for the side calls to be answered first even on two busy cores.
      else await systemClock.sleep(peers.endpointsMs ?? 1_000, signal)
      return { slicesAtStart: 1, mode: 'watch' }
    },
    config: {
      appShutdownUrl,
      envoyAdminUrl,
      settleMs: peers.settleMs ?? 50,
      timeoutMs: peers.timeoutMs ?? 5_000,
      sideCallTimeoutMs: peers.sideCallTimeoutMs ?? 10_000,
    },
  })
  const startedAt = performance.now()
  const summary: DrainSummary = await coordinator.start('hook')
  const ms = performance.now() - startedAt
  const failed = (phase: string) => metricValue(registry, 'drain_coordinator_phase_failures_total', { phase })
  return {
    summary,
    ms,
    envoy,
    app,
    log,
    endpointsStartedAt: endpointsStartedAt ?? Infinity,
    endpointsDelayMs: (endpointsStartedAt ?? Infinity) - startedAt,
    failed,
  }
}

test('a hanging Envoy and a hanging app delay neither the endpoint wait nor the release; both are reported cancelled', async (t) => {
  const { summary, ms, endpointsDelayMs, envoy, app } = await drain(t, { envoy: { kind: 'hang' }, app: 'hang', sideCallTimeoutMs: 10_000 })
  t.is(summary.outcome, 'completed')
  t.true(endpointsDelayMs < 1_000, `endpoint wait began ${Math.round(endpointsDelayMs)}ms in`)
  t.true(ms < 5_000, `released after ${Math.round(ms)}ms, the side calls would have waited 10s`)
  t.is(summary.phases.endpoints.status, 'ok')
  t.is(summary.phases.settle.status, 'ok')
  t.is(summary.phases.envoy.status, 'cancelled')
  t.is(summary.phases.app.status, 'cancelled')
  t.is(envoy.calls.length, 1)
  t.is(app.calls.length, 1)
})

test('a hanging Envoy is cut off at the side-call timeout and reported failed with that reason', async (t) => {
  const { summary, failed } = await drain(t, { envoy: { kind: 'hang' }, sideCallTimeoutMs: 1_000, endpointsMs: 2_500 })
  t.is(summary.outcome, 'completed')
  t.is(summary.phases.envoy.status, 'failed')
  t.regex(String(summary.phases.envoy.error?.message), /no answer within 1000ms/)
  t.is(summary.phases.app.status, 'ok')
  t.is(await failed('envoy'), 1)
  t.is(await failed('app'), 0)
})

test('Envoy answering 503 and the app answering 500 are each reported failed with the status; the drain completes', async (t) => {
  const { summary, failed, log } = await drain(t, { envoy: { kind: 'status', status: 503 }, app: 500 })
  t.is(summary.outcome, 'completed')
  t.is(summary.phases.envoy.status, 'failed')
  t.regex(String(summary.phases.envoy.error?.message), /status 503/)
  t.is(summary.phases.app.status, 'failed')
  t.regex(String(summary.phases.app.error?.message), /status 500/)
  t.is(await failed('envoy'), 1)
  t.is(await failed('app'), 1)
  t.is(log.lines.filter((l) => l.event === 'phase_failed').length, 2)
})

test('an app that is down (connection refused) is reported failed, the drain completes', async (t) => {
  const { summary } = await drain(t, { app: 'down' })
  t.is(summary.outcome, 'completed')
  t.is(summary.phases.app.status, 'failed')
  t.regex(String(summary.phases.app.error?.message), /ECONNREFUSED|fetch failed/)
  t.is(summary.phases.envoy.status, 'ok')
})

test('an Envoy admin that is down (connection refused) is reported failed with its URL, the drain completes', async (t) => {
  const { summary, failed } = await drain(t, { envoy: 'down' })
  t.is(summary.outcome, 'completed')
  t.is(summary.phases.envoy.status, 'failed')
  t.regex(
    String(summary.phases.envoy.error?.message),
    /Envoy drain: POST http:\/\/127\.0\.0\.1:\d+\/drain_listeners\?inboundonly&graceful.*(ECONNREFUSED|fetch failed)/,
  )
  t.is(summary.phases.app.status, 'ok')
  t.is(await failed('envoy'), 1)
})

test('a slow app (answers after 300ms) is reported ok with its duration and does not hold the endpoint wait', async (t) => {
  const { summary, endpointsStartedAt, app } = await drain(t, { app: { slowMs: 300 }, endpointsMs: 1_500 })
  t.is(summary.phases.app.status, 'ok')
  t.true((summary.phases.app.durationSeconds ?? 0) >= 0.29)
  // An order, not a duration: the wait began before the app could have answered, however busy the cores.
  const appAnsweredAtTheEarliest = app.calls[0]!.at + 300
  t.true(endpointsStartedAt < appAnsweredAtTheEarliest, 'the endpoint wait did not wait for the app')
})

test('a slow Envoy (answers after 300ms) is reported ok with its duration, and is POSTed the graceful inbound drain', async (t) => {
  const { summary, envoy } = await drain(t, { envoy: { kind: 'delay', ms: 300 }, endpointsMs: 1_500 })
  t.is(summary.phases.envoy.status, 'ok')
  t.true((summary.phases.envoy.durationSeconds ?? 0) >= 0.29)
  t.like(envoy.calls[0], { method: 'POST', path: '/drain_listeners', query: '?inboundonly&graceful' })
  t.true(envoy.drainingInbound)
})

test('hanging peers and an endpoint wait that never ends: the deadline still releases the hook with outcome timeout', async (t) => {
  const { summary, ms } = await drain(t, {
    envoy: { kind: 'hang' },
    app: 'hang',
    endpointsMs: 'never',
    timeoutMs: 600,
    sideCallTimeoutMs: 10_000,
  })
  t.is(summary.outcome, 'timeout')
  t.true(ms < 600 + 2_000, `answered after ${Math.round(ms)}ms`)
  t.is(summary.phases.endpoints.status, 'cancelled')
  t.is(summary.phases.settle.status, 'cancelled')
})

test('black box: with Envoy hanging and the app down, the bundle answers the hook after DRAIN_SETTLE and says what failed', async (t) => {
  const envoy = await startFakeEnvoy()
  t.teardown(() => envoy.close())
  envoy.setMode({ kind: 'hang' })
  const sidecar = await startSidecar({
    DRAIN_ENVOY_ADMIN_URL: envoy.url,
    DRAIN_APP_SHUTDOWN_URL: `http://127.0.0.1:${await freePort()}/shutdown`,
    DRAIN_SETTLE: '300ms',
    DRAIN_TIMEOUT: '5s',
  })
  t.teardown(() => sidecar.stop())
  const startedAt = performance.now()
  const response = await fetch(`${sidecar.url}/prestop`)
  const ms = performance.now() - startedAt
  const summary = (await response.json()) as DrainSummary
  t.is(summary.outcome, 'completed')
  t.true(ms < 5_000, `answered after ${Math.round(ms)}ms`)
  t.is(summary.phases.app.status, 'failed')
  t.true(['failed', 'cancelled'].includes(summary.phases.envoy.status))
  t.is(summary.phases.settle.status, 'ok')
})

test('a settle cut short by the deadline (real clock) is reported cancelled, not failed, and counts no phase failure', async (t) => {
  const { summary, failed, log } = await drain(t, { endpointsMs: 100, settleMs: 3_000, timeoutMs: 1_500 })
  t.is(summary.outcome, 'timeout')
  t.is(summary.phases.endpoints.status, 'ok')
  t.is(summary.phases.settle.status, 'cancelled')
  t.is(await failed('settle'), 0)
  t.false(log.lines.some((l) => l.event === 'phase_failed'))
})
