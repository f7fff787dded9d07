/**
 * The traffic-quiet gate in the built sidecar, on this machine's real /proc/net: a keep-alive connection to the
 * app holds the hook while it is open, and the sidecar's own keep-alive call to the app's shutdown URL does not.
 */
import { createServer, type Server } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import test from 'ava'
import { startSidecar } from '../sim/fakes/sidecar-process.ts'

/**
 * This machine's network namespace is shared with every other test process, whose short connections raise the
 * kernel's PassiveOpens counter at any moment; the counter is tested on injected samples (traffic-observer).
 */
const SHARED_NAMESPACE = { DRAIN_TRAFFIC_COUNTER: 'off' }

async function app(t: import('ava').ExecutionContext): Promise<{ server: Server; port: number }> {
  const server = createServer((_req, res) => res.end('ok\n'))
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))))
  return { server, port: (server.address() as AddressInfo).port }
}

async function drain(url: string) {
  const response = await fetch(`${url}/prestop`)
  return { at: performance.now(), body: (await response.json()) as Record<string, any> }
}

test('an open client connection to the app holds the hook until it closes, then one quiet period', async (t) => {
  const { port } = await app(t)
  const sidecar = await startSidecar({
    DRAIN_APP_PORTS: String(port),
    DRAIN_QUIET_PERIOD: '500ms',
    DRAIN_SETTLE: '15s',
    DRAIN_TIMEOUT: '20s',
    ...SHARED_NAMESPACE,
  })
  t.teardown(() => sidecar.stop())
  const client: Socket = await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket))
  })
  const answer = drain(sidecar.url)
  await sidecar.waitForLog('drain_started')
  // Long enough for several samples to see the connection open on two busy cores.
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  const closedAt = performance.now()
  client.destroy()
  const { at, body } = await answer
  t.true(at >= closedAt, 'answered only after the client connection closed')
  t.like(body.phases.settle, { status: 'ok', mode: 'quiet', endedBy: 'quiet' })
  t.true(body.phases.settle.trafficLagSeconds >= 1, `traffic lag ${body.phases.settle.trafficLagSeconds}s covers the open connection`)
  t.true(body.phases.settle.durationSeconds < 10, 'well before the 15 s upper bound')
  t.true(body.phases.settle.sources.includes('/proc/net/tcp'))
})

test("the sidecar's own keep-alive call to the app's shutdown URL is not traffic", async (t) => {
  const { port } = await app(t)
  const sidecar = await startSidecar({
    DRAIN_APP_PORTS: String(port),
    DRAIN_APP_SHUTDOWN_URL: `http://127.0.0.1:${port}/shutdown`,
    DRAIN_QUIET_PERIOD: '500ms',
    DRAIN_SETTLE: '15s',
    DRAIN_TIMEOUT: '20s',
    ...SHARED_NAMESPACE,
  })
  t.teardown(() => sidecar.stop())
  const { body } = await drain(sidecar.url)
  t.is(body.phases.app.status, 'ok')
  t.like(body.phases.settle, { mode: 'quiet', endedBy: 'quiet' })
  t.true(
    body.phases.settle.durationSeconds < 10,
    `settled in ${body.phases.settle.durationSeconds}s while the sidecar's pooled connection to the app stayed open`,
  )
})
