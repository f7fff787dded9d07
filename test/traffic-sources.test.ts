/**
 * The traffic sources together: the HTTP counters read before /proc, the sidecar's own metric GETs excluded from
 * the /proc view even when the app closes after each answer, and a drain held by traffic that only the app's own
 * counter sees (fake clock).
 */
import test from 'ava'
import type { DrainSummary } from '../src/drain.ts'
import type { Fetch } from '../src/transport.ts'
import { appMetricSource } from '../src/traffic/counter-source.ts'
import { createTrafficObserver } from '../src/traffic/observer.ts'
import { OWN_END_TTL_MS, createOwnConnections } from '../src/traffic/own-connections.ts'
import { parseSelector } from '../src/traffic/prom-text.ts'
import { combineSources } from '../src/traffic/sources.ts'
import { captureLog } from './helpers/capture-log.ts'
import { testCoordinator } from './helpers/coordinator.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { fakeProc } from './helpers/fake-proc.ts'

const POD = '198.18.0.10'
const APP = { address: POD, port: 8080 }
const SELECTOR = parseSelector('http_requests_total{path!="/ready"}')
const exposition = (count: number) =>
  `# TYPE http_requests_total counter\nhttp_requests_total{path="/api"} ${count}\nhttp_requests_total{path="/ready"} 7\n`

/**
 * A pod whose app serves its metrics on its traffic port and closes the connection after each answer (as
 * Python's prometheus_client does): every GET of the sidecar leaves the app's end in TIME_WAIT, with the
 * sidecar's client socket already gone by the time /proc is read.
 */
function closingMetricsPod(clock: FakeClock, { record = true } = {}) {
  const proc = fakeProc()
  proc.listen('0.0.0.0', 8080)
  proc.listen('::', 8099, { own: true })
  const own = createOwnConnections(clock)
  let requests = 5
  let nextPort = 41000
  const fetch: Fetch = async () => {
    const port = nextPort++
    if (record) own.record(POD, port) // what transport.ts's onConnect reports
    const appEnd = proc.accept(APP, { address: POD, port })
    proc.set(appEnd, 'TIME_WAIT')
    return new Response(exposition(requests))
  }
  const observe = combineSources(
    createTrafficObserver({ read: proc.reader, appPorts: undefined, hostIps: [], sidecarPort: 8099, ownLocalEnds: own.ends }),
    [appMetricSource(`http://${POD}:8080/metrics`, SELECTOR, { fetch, clock, timeoutMs: 2_000 })()],
    captureLog(),
  )
  return { proc, observe, own, serve: () => requests++ }
}

test("the sidecar's own metric GETs to the app's port are not traffic, though the app closed each one first", async (t) => {
  const clock = new FakeClock()
  const { observe } = closingMetricsPod(clock)
  for (let i = 0; i < 5; i++) t.like(await observe(), { traffic: false, opened: 0, unexplainedOpens: 0 }, `sample ${i}`)
})

test('without the recorded local ends, each of those GETs would look like a new connection from a client', async (t) => {
  // The control for the test above: the same pod, the transport's record left out.
  const clock = new FakeClock()
  const { observe } = closingMetricsPod(clock, { record: false })
  await observe()
  t.like(await observe(), { traffic: true, opened: 1 })
})

test('a request the app counted is traffic at the next sample, through the combined observation', async (t) => {
  const clock = new FakeClock()
  const { observe, serve } = closingMetricsPod(clock)
  await observe()
  serve()
  const sample = await observe()
  t.like(sample, { traffic: true, opened: 0, open: 0 })
  t.deepEqual(sample.countersRose, [`http://${POD}:8080/metrics http_requests_total{path!="/ready"}`])
  t.deepEqual(sample.sources, [
    `http://${POD}:8080/metrics http_requests_total{path!="/ready"}`,
    '/proc/net/snmp',
    '/proc/net/tcp',
    '/proc/net/tcp6',
  ])
})

test('the HTTP sources are read before /proc', async (t) => {
  const order: string[] = []
  const observe = combineSources(
    async () => (order.push('proc'), { traffic: false, open: 0, opened: 0, unexplainedOpens: 0, sources: [], problems: [], appPorts: [] }),
    [
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 20))
        order.push('counter')
        return { source: 'c', traffic: false }
      },
    ],
    captureLog(),
  )
  await observe()
  t.deepEqual(order, ['counter', 'proc'])
})

test("a counter source's problem is traffic and named; its empty-selection warning is logged, not counted", async (t) => {
  const log = captureLog()
  const quietProc = async () => ({
    traffic: false,
    open: 0,
    opened: 0,
    unexplainedOpens: 0,
    sources: ['/proc/net/tcp'],
    problems: [],
    appPorts: [8080],
  })
  const failing = combineSources(quietProc, [async () => ({ source: 'u', traffic: true, problem: 'u: GET u failed' })], log)
  t.like(await failing(), { traffic: true, problems: ['u: GET u failed'], sources: ['/proc/net/tcp'] })
  const empty = combineSources(quietProc, [async () => ({ source: 'e', traffic: false, warning: 'e: matched no series' })], log)
  t.like(await empty(), { traffic: false, problems: [], sources: ['e', '/proc/net/tcp'] })
  t.deepEqual(log.events(), ['traffic_source_empty'])
})

test('recorded local ends are forgotten two minutes after their connection opened', async (t) => {
  const clock = new FakeClock()
  const own = createOwnConnections(clock)
  own.record('::ffff:127.0.0.1', 41000)
  t.deepEqual([...own.ends()], ['127.0.0.1|41000'], 'canonical, as /proc decodes it')
  await clock.advance(OWN_END_TTL_MS - 1)
  own.record('127.0.0.1', 41001)
  t.deepEqual([...own.ends()], ['127.0.0.1|41000', '127.0.0.1|41001'])
  await clock.advance(1)
  t.deepEqual([...own.ends()], ['127.0.0.1|41001'])
})

test("traffic that only the app's own counter sees holds the hook until it has been quiet for the quiet period", async (t) => {
  const clock = new FakeClock()
  const { observe, serve } = closingMetricsPod(clock)
  const { coordinator, log } = testCoordinator({
    clock,
    waitForEndpoints: async (signal) => {
      await clock.sleep(1_000, signal)
      return { slicesAtStart: 1, mode: 'watch' }
    },
    trafficObserver: () => observe,
    config: { quietPeriodMs: 1_000, settleMs: 20_000, timeoutMs: 30_000 },
  })
  let answered: DrainSummary | undefined
  void coordinator.start('hook').then((summary) => (answered = summary))
  // Requests keep arriving on a connection /proc cannot see (from the node's address, say) for 3 s after the wait.
  for (let ms = 0; ms < 4_000; ms += 100) {
    if (ms >= 1_000 && ms <= 4_000) serve()
    await clock.advance(100)
  }
  t.is(answered, undefined, 'still held while the counter rises')
  await clock.advance(900)
  t.is(answered, undefined)
  await clock.advance(200)
  t.truthy(answered)
  t.like(answered!.phases.settle, { status: 'ok', mode: 'quiet', endedBy: 'quiet' })
  t.true((answered!.phases.settle.trafficLagSeconds as number) >= 2.9, `lag ${answered!.phases.settle.trafficLagSeconds}`)
  t.true((answered!.phases.settle.sources as string[]).some((s) => s.includes('http_requests_total')))
  t.false(log.events().includes('traffic_unobservable'))
})
