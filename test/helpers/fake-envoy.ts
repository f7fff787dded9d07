/**
 * A fake Envoy admin API with the real shapes (docs/envoy-admin.md): mutating endpoints take POST
 * only and answer anything else with 405 `Method GET not allowed, POST required.`; a path that is not exactly
 * a handler's prefix gets 404 with the help listing; success is `200 OK\n`; `/ready` stays `LIVE` after a
 * listener drain. Modes make it fail, hang or lag.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

const MUTATING = new Set(['/drain_listeners', '/healthcheck/fail', '/healthcheck/ok', '/quitquitquit', '/reset_counters'])

export type Mode = { kind: 'ok' } | { kind: 'status'; status: number } | { kind: 'hang' } | { kind: 'delay'; ms: number }

export async function startFakeEnvoy() {
  const calls: Array<{ method: string; path: string; query: string; at: number }> = []
  let mode: Mode = { kind: 'ok' }
  let drainingInbound = false
  const sockets = new Set<Socket>()

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://envoy')
    calls.push({ method: req.method ?? 'GET', path: url.pathname, query: url.search, at: performance.now() })
    const text = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=UTF-8', 'cache-control': 'no-cache, max-age=0', 'x-content-type-options': 'nosniff' })
      res.end(body)
    }
    if (MUTATING.has(url.pathname)) {
      if (req.method !== 'POST') return text(405, `Method ${req.method} not allowed, POST required.`)
      const answer = () => {
        if (mode.kind === 'status') return text(mode.status, 'upstream fault\n')
        if (url.pathname === '/drain_listeners') drainingInbound = drainingInbound || (url.searchParams.has('graceful') && url.searchParams.has('inboundonly'))
        text(200, 'OK\n')
      }
      if (mode.kind === 'hang') return
      if (mode.kind === 'delay') return void setTimeout(answer, mode.ms)
      return answer()
    }
    if (url.pathname === '/ready') return text(200, 'LIVE\n')
    text(404, 'invalid path. admin commands are:\n  /drain_listeners (POST): drain listeners\n  /ready: print server state, return 200 if LIVE, otherwise return 503\n')
  })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    /** True once a POST /drain_listeners?inboundonly&graceful succeeded. */
    get drainingInbound() {
      return drainingInbound
    },
    setMode(next: Mode) {
      mode = next
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
