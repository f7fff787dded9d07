/**
 * The simulated application: a separate HTTP server process with the common, naive SIGTERM handling (stop
 * accepting, let in-flight requests finish, exit). Every request takes SIM_WORK_MS of simulated work.
 * Environment: SIM_HOST, SIM_PORT, SIM_WORK_MS. Reports `listening`, `sigterm` and `exiting` on stdout.
 */
import { createServer } from 'node:http'
import { emit } from './common.ts'

const host = process.env.SIM_HOST ?? '127.0.0.1'
const port = Number(process.env.SIM_PORT ?? 0)
const workMs = Number(process.env.SIM_WORK_MS ?? 5)
let served = 0

const server = createServer((req, res) => {
  req.resume()
  setTimeout(() => {
    served++
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
  emit('sigterm', { served })
  // The naive handler most apps have: no new connections; close() waits for in-flight requests (Node also
  // closes idle keep-alive connections here), then the process exits.
  server.close(() => {
    emit('exiting', { served })
    process.exit(0)
  })
})
