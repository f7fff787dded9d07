/**
 * A fake Envoy admin API with the real shapes (docs/envoy-admin.md): mutating endpoints take POST
 * only and answer anything else with 405 `Method GET not allowed, POST required.`; a path that is not exactly
 * a handler's prefix gets 404 with the help listing; success is `200 OK\n`; `/ready` stays `LIVE` after a
 * listener drain. Modes make it fail, hang or lag.
 *
 * `GET /stats` as docs/envoy-admin.md §4 says: `format=` text (default, `name: value` lines) or json
 * (`{"stats":[{"name","value"},…]}`); prometheus and html are not rendered here (400, like an unknown format, so a
 * client relying on them fails loudly); `filter=` a regular expression with partial-match semantics (RE2 there,
 * JavaScript's here: the filters this project sends use the common subset), an invalid one 400 `Invalid re2
 * regex`; `usedonly` leaves out stats never written. Counters are the admin listener's (every admin request and
 * connection counts there, as in Envoy) and whatever a test adds with `count`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

const MUTATING = new Set(['/drain_listeners', '/healthcheck/fail', '/healthcheck/ok', '/quitquitquit', '/reset_counters'])

export type Mode = { kind: 'ok' } | { kind: 'status'; status: number } | { kind: 'hang' } | { kind: 'delay'; ms: number }

/** `host`: where the admin API listens (default loopback). */
export async function startFakeEnvoy({ host = '127.0.0.1' }: { host?: string } = {}) {
  const calls: Array<{ method: string; path: string; query: string; at: number }> = []
  let mode: Mode = { kind: 'ok' }
  let drainingInbound = false
  const sockets = new Set<Socket>()
  /** Counters by name, and the names ever written (`usedonly` shows only those). */
  const written = new Set<string>()
  const counters = new Map<string, number>([
    ['http.admin.downstream_rq_total', 0],
    ['listener.admin.downstream_cx_total', 0],
    ['listener.admin.main_thread.downstream_cx_total', 0],
  ])
  const count = (name: string, by = 1) => {
    counters.set(name, (counters.get(name) ?? 0) + by)
    written.add(name)
  }

  function stats(url: URL, text: (status: number, body: string, type?: string) => void) {
    const format = url.searchParams.get('format') ?? 'text'
    if (format !== 'text' && format !== 'json') return text(400, 'usage: /stats?format=(html|active-html|json|prometheus|text)\n\n')
    let filter: RegExp | undefined
    try {
      const source = url.searchParams.get('filter')
      filter = source === null ? undefined : new RegExp(source)
    } catch {
      return text(400, 'Invalid re2 regex')
    }
    const selected = [...counters]
      .filter(([name]) => (filter === undefined || filter.test(name)) && (!url.searchParams.has('usedonly') || written.has(name)))
      .sort(([a], [b]) => a.localeCompare(b))
    if (format === 'text') return text(200, selected.map(([name, value]) => `${name}: ${value}\n`).join(''))
    text(200, JSON.stringify({ stats: selected.map(([name, value]) => ({ name, value })) }), 'application/json')
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://envoy')
    calls.push({ method: req.method ?? 'GET', path: url.pathname, query: url.search, at: performance.now() })
    count('http.admin.downstream_rq_total')
    const text = (status: number, body: string, type = 'text/plain; charset=UTF-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-cache, max-age=0', 'x-content-type-options': 'nosniff' })
      res.end(body)
    }
    if (MUTATING.has(url.pathname)) {
      if (req.method !== 'POST') return text(405, `Method ${req.method} not allowed, POST required.`)
      const answer = () => {
        if (mode.kind === 'status') return text(mode.status, 'upstream fault\n')
        if (url.pathname === '/drain_listeners')
          drainingInbound = drainingInbound || (url.searchParams.has('graceful') && url.searchParams.has('inboundonly'))
        text(200, 'OK\n')
      }
      if (mode.kind === 'hang') return
      if (mode.kind === 'delay') return void setTimeout(answer, mode.ms)
      return answer()
    }
    if (url.pathname === '/ready') return text(200, 'LIVE\n')
    if (url.pathname === '/stats') return stats(url, text)
    text(
      404,
      'invalid path. admin commands are:\n  /drain_listeners (POST): drain listeners\n  /ready: print server state, return 200 if LIVE, otherwise return 503\n',
    )
  })
  server.on('connection', (socket: Socket) => {
    count('listener.admin.downstream_cx_total')
    count('listener.admin.main_thread.downstream_cx_total')
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://${host}:${port}`,
    calls,
    /** True once a POST /drain_listeners?inboundonly&graceful succeeded. */
    get drainingInbound() {
      return drainingInbound
    },
    setMode(next: Mode) {
      mode = next
    },
    /** Adds to a counter (creating it): traffic through one of this Envoy's listeners. */
    count,
    /** Declares a counter at 0 that was never written (a listener nobody connected to yet). */
    declare: (name: string) => void (counters.has(name) || counters.set(name, 0)),
    counter: (name: string) => counters.get(name),
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
