/**
 * The simulated clients: an open-loop load at a steady rate through the load balancer (a request is sent on
 * schedule whether or not earlier ones have answered), alternating between a fresh connection per request and a
 * pool of keep-alive connections. Every failure is counted: refused, reset, timeout, 5xx.
 */
import { Agent, request } from 'node:http'
import { now, within } from './common.ts'

type FailureKind = 'refused' | 'reset' | 'timeout' | '5xx' | 'other'
export type Failure = { at: number; kind: FailureKind; detail: string; keepAlive: boolean; backend: string | undefined }

export type LoadResult = {
  sent: number
  ok: number
  failed: number
  byKind: Record<FailureKind, number>
  failures: Failure[]
  durationMs: number
}

/**
 * `keepAliveClients`: that many clients, each with one keep-alive connection of its own, taking the keep-alive
 * requests in turn (behind an L4 data plane each connection is pinned to one pod); default: one pool of up to 32,
 * which reuses its most recent idle connection and so, at low concurrency, mostly one.
 */
export function startLoad({
  url,
  ratePerSecond,
  timeoutMs = 3_000,
  keepAliveShare = 0.5,
  keepAliveClients,
}: {
  url: string
  ratePerSecond: number
  timeoutMs?: number
  keepAliveShare?: number
  keepAliveClients?: number
}) {
  const agents = keepAliveClients
    ? Array.from({ length: keepAliveClients }, () => new Agent({ keepAlive: true, maxSockets: 1 }))
    : [new Agent({ keepAlive: true, maxSockets: 32 })]
  let nextAgent = 0
  const startedAt = now()
  let sent = 0
  let ok = 0
  const failures: Failure[] = []
  const inflight = new Set<Promise<void>>()
  let stopped = false

  function one(keepAlive: boolean): Promise<void> {
    sent++
    return new Promise<void>((resolve) => {
      let settled = false
      const settle = (failure?: Omit<Failure, 'at' | 'keepAlive'>) => {
        if (settled) return
        settled = true
        if (failure) failures.push({ at: now(), keepAlive, ...failure })
        else ok++
        resolve()
      }
      const req = request(
        url,
        { agent: keepAlive ? agents[nextAgent++ % agents.length] : false, headers: keepAlive ? {} : { connection: 'close' } },
        (res) => {
          const status = res.statusCode ?? 0
          const backend = res.headers['x-sim-backend'] as string | undefined
          res.resume()
          res.on('end', () => {
            if (status >= 500)
              settle({
                kind: '5xx',
                detail: `${status} ${res.headers['x-sim-upstream-error'] ?? res.headers['x-sim-lb'] ?? ''}`.trim(),
                backend,
              })
            else settle()
          })
          res.on('error', (error: NodeJS.ErrnoException) => settle({ kind: classify(error), detail: error.code ?? error.message, backend }))
        },
      )
      const timer = setTimeout(() => {
        settle({ kind: 'timeout', detail: `no answer within ${timeoutMs}ms`, backend: undefined })
        req.destroy()
      }, timeoutMs)
      req.on('close', () => clearTimeout(timer))
      req.on('error', (error: NodeJS.ErrnoException) =>
        settle({ kind: classify(error), detail: error.code ?? error.message, backend: undefined }),
      )
      req.end()
    })
  }

  // Catch up on schedule at each tick, so timer jitter never lowers the rate.
  const intervalMs = Math.max(1, Math.min(10, 1_000 / ratePerSecond))
  const ticker = setInterval(() => {
    if (stopped) return
    const due = Math.floor(((now() - startedAt) / 1_000) * ratePerSecond)
    for (let budget = 1_000; sent < due && budget > 0; budget--) {
      // keepAliveShare of the requests, spread evenly (0.5: every other one).
      const keepAlive = Math.floor((sent + 1) * keepAliveShare) > Math.floor(sent * keepAliveShare)
      const promise = one(keepAlive)
      inflight.add(promise)
      void promise.then(() => inflight.delete(promise))
    }
  }, intervalMs)

  return {
    /** Stops sending, waits (bounded) for every request in flight to finish, and returns the totals. */
    async stop(): Promise<LoadResult> {
      stopped = true
      clearInterval(ticker)
      const durationMs = now() - startedAt
      await within(Promise.all([...inflight]), timeoutMs + 1_000)
      for (const agent of agents) agent.destroy()
      const byKind: Record<FailureKind, number> = { refused: 0, reset: 0, timeout: 0, '5xx': 0, other: 0 }
      for (const failure of failures) byKind[failure.kind]++
      return { sent, ok, failed: failures.length, byKind, failures, durationMs }
    },
  }
}

function classify(error: NodeJS.ErrnoException): FailureKind {
  if (error.code === 'ECONNREFUSED') return 'refused'
  if (error.code === 'ECONNRESET' || error.code === 'EPIPE' || error.message === 'socket hang up') return 'reset'
  if (error.code === 'ETIMEDOUT') return 'timeout'
  return 'other'
}
