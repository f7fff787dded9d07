/**
 * The simulated application: a separate HTTP server process with the common, naive SIGTERM handling (stop
 * accepting, let in-flight requests finish, exit), as Go's http.Server.Shutdown does it: idle keep-alive
 * connections are closed at once, busy ones after their response. Every request takes SIM_WORK_MS of simulated work.
 * POST /shutdown (drain-coordinator's DRAIN_APP_SHUTDOWN_URL): with SIM_SHUTDOWN_KEEPALIVE=off the app stops
 * keeping connections alive from then on (idle ones closed at once, busy ones after their response), as an app
 * should for the traffic-quiet gate; with `on` (the default) it only answers 200.
 * SIM_SIGTERM=exit plays an app with no SIGTERM handler (Node's default): it dies at once, its connections with it.
 * Environment: SIM_HOST, SIM_PORT, SIM_WORK_MS, SIM_SHUTDOWN_KEEPALIVE, SIM_SIGTERM. Reports `listening`, `sigterm` and
 * `exiting` (with `arrivedAfterSigterm`: requests that reached the app after SIGTERM, which a drain should have
 * made impossible) on stdout.
 */
import { createServer } from 'node:http'
import { emit } from './common.ts'

const host = process.env.SIM_HOST ?? '127.0.0.1'
const port = Number(process.env.SIM_PORT ?? 0)
const workMs = Number(process.env.SIM_WORK_MS ?? 5)
const keepAliveAfterShutdown = process.env.SIM_SHUTDOWN_KEEPALIVE !== 'off'
let served = 0
let closing = false
let sigterm = false
let arrivedAfterSigterm = 0

const server = createServer((req, res) => {
  req.resume()
  if (req.method === 'POST' && req.url === '/shutdown') {
    if (!keepAliveAfterShutdown) {
      closing = true
      server.closeIdleConnections()
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('shutting down\n')
    return
  }
  if (sigterm) arrivedAfterSigterm++
  setTimeout(() => {
    served++
    // Node's server.close() alone would keep serving new requests on a connection that was busy at SIGTERM, for
    // as long as the proxy keeps reusing it: the app would neither finish nor exit while it is still routed.
    if (closing) res.setHeader('connection', 'close')
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end(`served by ${host}\n`)
  }, workMs)
})
// Real servers keep idle keep-alive connections open a while; Node's default (5 s) is typical.
server.keepAliveTimeout = 5_000

server.listen(port, host, () => {
  const address = server.address()
  emit('listening', { host, port: typeof address === 'object' && address ? address.port : port })
})

process.once('SIGTERM', () => {
  if (process.env.SIM_SIGTERM === 'exit') {
    emit('exiting', { served, arrivedAfterSigterm: 0 })
    process.exit(0)
  }
  sigterm = true
  emit('sigterm', { served })
  // The naive handler most apps have: no new connections; close() closes idle keep-alive connections and waits
  // for in-flight requests, whose connections close after their response; then the process exits.
  closing = true
  server.close(() => {
    emit('exiting', { served, arrivedAfterSigterm })
    process.exit(0)
  })
})
