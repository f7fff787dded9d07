import test from 'ava'
import type { DrainSummary } from '../src/drain.ts'
import { createTrafficObserver, type Observation } from '../src/traffic/observer.ts'
import { testCoordinator } from './helpers/coordinator.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { fakeProc } from './helpers/fake-proc.ts'

const quiet: Observation = {
  traffic: false,
  open: 0,
  opened: 0,
  unexplainedOpens: 0,
  sources: ['/proc/net/snmp', '/proc/net/tcp'],
  problems: [],
  appPorts: [8080],
}

/** A drain whose endpoint wait ends after `endpointsMs`, then settles with observations from `observe(now)`. */
function harness(
  observe: ((now: number) => Observation | Promise<Observation>) | undefined,
  config: { quietPeriodMs?: number; settleMinMs?: number; settleMs?: number; timeoutMs?: number; endpointsMs?: number } = {},
) {
  const clock = new FakeClock()
  const endpointsMs = config.endpointsMs ?? 2_000
  const { coordinator, log, registry } = testCoordinator({
    clock,
    waitForEndpoints: async (signal) => {
      await clock.sleep(endpointsMs, signal)
      return { slicesAtStart: 1, mode: 'watch' }
    },
    trafficObserver: observe === undefined ? undefined : () => async () => observe(clock.now()),
    config: {
      quietPeriodMs: config.quietPeriodMs ?? 1_000,
      settleMinMs: config.settleMinMs ?? 0,
      settleMs: config.settleMs ?? 20_000,
      timeoutMs: config.timeoutMs ?? 30_000,
    },
  })
  let answered: DrainSummary | undefined
  const answer = coordinator.start('hook').then((summary) => (answered = summary))
  return { clock, log, registry, answer, answered: () => answered, endpointsMs }
}

test('no traffic after the endpoint wait: released one quiet period later, lag 0', async (t) => {
  const h = harness(() => quiet)
  await h.clock.advance(2_999)
  t.is(h.answered(), undefined)
  await h.clock.advance(1)
  await h.answer
  t.is(h.answered()!.durationSeconds, 3)
  t.like(h.answered()!.phases.settle, { status: 'ok', mode: 'quiet', endedBy: 'quiet', trafficLagSeconds: 0, durationSeconds: 1 })
  t.deepEqual(h.answered()!.phases.settle.sources, ['/proc/net/snmp', '/proc/net/tcp'])
})

test('traffic that keeps arriving after the wait holds the hook until it has been quiet for the quiet period', async (t) => {
  // The load balancer keeps routing for 4 s after the endpoint left the slices.
  const h = harness((now) => ({ ...quiet, traffic: now <= 6_000, opened: now <= 6_000 ? 1 : 0 }))
  await h.clock.advance(6_999)
  t.is(h.answered(), undefined, 'still held: the last traffic was less than a quiet period ago')
  await h.clock.advance(1)
  await h.answer
  t.is(h.answered()!.durationSeconds, 7)
  t.like(h.answered()!.phases.settle, { mode: 'quiet', endedBy: 'quiet', trafficLagSeconds: 4 })
  const text = await h.registry.metrics()
  t.regex(text, /^drain_coordinator_traffic_lag_seconds_sum 4$/m)
  t.regex(text, /^drain_coordinator_traffic_lag_seconds_count 1$/m)
})

test('traffic that never stops ends the settle at its upper bound, DRAIN_SETTLE', async (t) => {
  const h = harness(() => ({ ...quiet, traffic: true, open: 1 }), { settleMs: 8_000 })
  await h.clock.advance(9_999)
  t.is(h.answered(), undefined)
  await h.clock.advance(1)
  await h.answer
  t.like(h.answered(), { outcome: 'completed', durationSeconds: 10 })
  t.like(h.answered()!.phases.settle, { endedBy: 'upper bound', trafficLagSeconds: 8 })
})

test('DRAIN_SETTLE_MIN is a floor even when nothing arrives', async (t) => {
  const h = harness(() => quiet, { settleMinMs: 3_000 })
  await h.clock.advance(4_999)
  t.is(h.answered(), undefined)
  await h.clock.advance(1)
  await h.answer
  t.like(h.answered()!.phases.settle, { endedBy: 'quiet', durationSeconds: 3 })
})

test('DRAIN_QUIET_PERIOD=0 is the fixed settle: the observer is never asked', async (t) => {
  let asked = 0
  const h = harness(() => (asked++, quiet), { quietPeriodMs: 0, settleMs: 5_000 })
  await h.clock.advance(7_000)
  await h.answer
  t.is(asked, 0)
  t.like(h.answered()!.phases.settle, { mode: 'fixed', endedBy: 'upper bound', trafficLagSeconds: null, durationSeconds: 5 })
  t.regex(await h.registry.metrics(), /^drain_coordinator_traffic_lag_seconds_count 0$/m)
})

test('the deadline during the settle: cancelled, outcome timeout, and the settle still says what it saw', async (t) => {
  const h = harness(() => ({ ...quiet, traffic: true, open: 1 }), { settleMs: 20_000, timeoutMs: 10_000 })
  await h.clock.advance(10_000)
  await h.answer
  t.is(h.answered()!.outcome, 'timeout')
  t.like(
    h.answered()!.phases.settle,
    { status: 'cancelled', mode: 'quiet', endedBy: 'deadline', trafficLagSeconds: 7.9 },
    'the last sample, 100 ms before the deadline, saw traffic',
  )
})

test('an observer that throws is not quiet: the settle runs to its upper bound, logged once', async (t) => {
  const h = harness(
    () => {
      throw new Error('EMFILE: too many open files')
    },
    { settleMs: 3_000 },
  )
  await h.clock.advance(5_000)
  await h.answer
  t.like(h.answered()!.phases.settle, { status: 'ok', endedBy: 'upper bound' })
  t.is(h.log.events().filter((e) => e === 'traffic_unobservable').length, 1)
})

test('a slow observer never holds the hook past the deadline', async (t) => {
  const h = harness(() => new Promise<Observation>(() => {}), { timeoutMs: 6_000 })
  await h.clock.advance(6_000)
  await h.answer
  t.like(h.answered(), { outcome: 'timeout', durationSeconds: 6 })
  t.like(h.answered()!.phases.settle, { status: 'cancelled', endedBy: 'deadline' })
})

test('probes during the drain: HTTP probes from the node do not hold the hook, tcpSocket probes that leave no socket do', async (t) => {
  const run = async (probe: 'http' | 'tcp') => {
    const proc = fakeProc()
    proc.listen('0.0.0.0', 8080)
    proc.listen('::', 8099, { own: true })
    const observe = createTrafficObserver({ read: proc.reader, appPorts: undefined, hostIps: ['198.18.0.1'], sidecarPort: 8099 })
    let port = 50_000
    const h = harness(
      async (now) => {
        // A probe every 500 ms, between samples; an HTTP probe's server side closes first and lingers in TIME_WAIT
        // with the node's address, a tcpSocket probe's prober closes first and leaves nothing on the pod's side.
        if (now % 500 === 0) {
          if (probe === 'http')
            proc.set(proc.accept({ address: '198.18.0.10', port: 8080 }, { address: '198.18.0.1', port: port++ }), 'TIME_WAIT')
          else proc.state.passiveOpens++
        }
        return observe()
      },
      { settleMs: 5_000 },
    )
    await h.clock.advance(10_000)
    await h.answer
    return h.answered()!.phases.settle
  }
  t.like(await run('http'), { endedBy: 'quiet', durationSeconds: 1 })
  t.like(await run('tcp'), { endedBy: 'upper bound', durationSeconds: 5 })
})

test('a traffic gate that breaks proves no quiet: the hook is held for the whole upper bound, DRAIN_SETTLE', async (t) => {
  const clock = new FakeClock()
  const { coordinator, log } = testCoordinator({
    clock,
    waitForEndpoints: async () => ({ slicesAtStart: 1, mode: 'watch' }),
    trafficObserver: () => {
      throw new TypeError("Cannot read properties of undefined (reading 'split')")
    },
    config: { quietPeriodMs: 1_000, settleMinMs: 0, settleMs: 8_000, timeoutMs: 30_000 },
  })
  let answered: DrainSummary | undefined
  const answer = coordinator.start('hook').then((summary) => (answered = summary))
  await clock.advance(7_999)
  t.is(answered, undefined, 'held while the upper bound has not passed')
  await clock.advance(1)
  await answer
  t.is(answered!.durationSeconds, 8)
  t.is(answered!.phases.settle.status, 'failed')
  t.true(log.events().includes('drain_held_without_evidence'))
})
