/**
 * The traffic gate's HTTP sources in the built sidecar: traffic that only Envoy's downstream counters, or only the
 * app's own request counter, see holds the hook until it stops, and the sidecar's own GETs of the app's metrics
 * (on the app's port, the app closing each connection first) are not traffic to the /proc source.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import test from 'ava'
import { startFakeEnvoy } from '../sim/fakes/fake-envoy.ts'
import { freePort, startSidecar } from '../sim/fakes/sidecar-process.ts'

// DRAIN_TRAFFIC_COUNTER=off: this machine's network namespace is shared with every other test process, whose
// short connections raise Tcp PassiveOpens at any moment; the sources under test here are the HTTP ones.
const GATE = { DRAIN_QUIET_PERIOD: '500ms', DRAIN_SETTLE: '15s', DRAIN_TIMEOUT: '20s', DRAIN_TRAFFIC_COUNTER: 'off' }

async function drain(url: string) {
  const response = await fetch(`${url}/prestop`)
  return { at: performance.now(), body: (await response.json()) as Record<string, any> }
}

/** Calls `tick` every 100 ms for `ms`, then stops; resolves with the moment it stopped. */
async function trafficFor(ms: number, tick: () => void): Promise<number> {
  const until = performance.now() + ms
  while (performance.now() < until) {
    tick()
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return performance.now()
}

test("requests only Envoy's counters see hold the hook until they stop, then one quiet period", async (t) => {
  const envoy = await startFakeEnvoy()
  t.teardown(() => envoy.close())
  envoy.declare('listener.0.0.0.0_10000.downstream_cx_total')
  // DRAIN_APP_PORTS names a port nobody uses: the /proc source sees nothing, only Envoy's counters can tell.
  const sidecar = await startSidecar({ ...GATE, DRAIN_ENVOY_ADMIN_URL: envoy.url, DRAIN_APP_PORTS: String(await freePort()) })
  t.teardown(() => sidecar.stop())
  const answer = drain(sidecar.url)
  await sidecar.waitForLog('drain_started')
  // Requests on a kept-alive downstream connection: no new connection, only the request counter rises.
  const stoppedAt = await trafficFor(2_000, () => envoy.count('http.ingress_http.downstream_rq_total'))
  const { at, body } = await answer
  t.true(at >= stoppedAt, 'answered only after the requests stopped')
  t.like(body.phases.settle, { status: 'ok', mode: 'quiet', endedBy: 'quiet' })
  t.true(body.phases.settle.trafficLagSeconds >= 1.5, `traffic lag ${body.phases.settle.trafficLagSeconds}s covers the requests`)
  t.true(body.phases.settle.durationSeconds < 10, 'well before the 15 s upper bound')
  t.true(body.phases.settle.sources.includes(`${envoy.url}/stats`), JSON.stringify(body.phases.settle.sources))
  const statsCall = envoy.calls.find((c) => c.path === '/stats')!
  t.regex(statsCall.query, /^\?format=json&filter=/)
  t.false(
    sidecar.logs.some((l) => l.event === 'traffic_unobservable'),
    'every /stats answer was read',
  )
})

test("requests only the app's own counter sees hold the hook; the sidecar's own GETs of /metrics on the app's port do not", async (t) => {
  let requests = 0
  let scrapes = 0
  // An app that serves its metrics on its traffic port and closes each connection after the answer (as Python's
  // prometheus_client does), so each GET leaves the app's end in TIME_WAIT after the sidecar's socket is gone.
  const app = createServer((req, res) => {
    res.setHeader('connection', 'close')
    if (req.url !== '/metrics') return void res.end('ok\n')
    scrapes++
    res.setHeader('content-type', 'text/plain; version=0.0.4')
    res.end(
      `# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\nhttp_requests_total{path="/api"} ${requests}\nhttp_requests_total{path="/ready"} 1\n`,
    )
  })
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => (app.closeAllConnections(), app.close(() => resolve()))))
  const port = (app.address() as AddressInfo).port
  const sidecar = await startSidecar({
    ...GATE,
    DRAIN_APP_PORTS: String(port),
    DRAIN_TRAFFIC_METRIC_URL: `http://127.0.0.1:${port}/metrics`,
    DRAIN_TRAFFIC_METRIC: 'http_requests_total{path!="/ready"}',
  })
  t.teardown(() => sidecar.stop())
  const answer = drain(sidecar.url)
  await sidecar.waitForLog('drain_started')
  // Requests the app counts that the /proc source cannot see (they would arrive through a proxy on another port).
  const stoppedAt = await trafficFor(2_000, () => requests++)
  const { at, body } = await answer
  t.true(at >= stoppedAt, 'answered only after the requests stopped')
  t.like(body.phases.settle, { status: 'ok', mode: 'quiet', endedBy: 'quiet' })
  t.true(body.phases.settle.trafficLagSeconds >= 1.5, `traffic lag ${body.phases.settle.trafficLagSeconds}s`)
  t.true(
    body.phases.settle.durationSeconds < 10,
    `settled in ${body.phases.settle.durationSeconds}s: the sidecar's own GETs were not traffic`,
  )
  t.true(body.phases.settle.sources.includes(`http://127.0.0.1:${port}/metrics http_requests_total{path!="/ready"}`))
  t.true(body.phases.settle.sources.includes('/proc/net/tcp'))
  t.true(scrapes >= 10, `${scrapes} GETs of /metrics, one per sample`)
})
