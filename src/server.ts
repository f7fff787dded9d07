/**
 * The one HTTP port: the preStop hook, the probes and the metrics. Handlers sit right after their paths; the
 * drain itself lives in drain.ts, the /ready verdict in readiness.ts.
 */
import type { IncomingMessage } from 'node:http'
import { type Context, type Handler, Hono } from 'hono'
import type { DrainCoordinator, DrainSummary } from './drain.ts'
import { HOOK_TOKEN_HEADER, type HookTokenSource, tokensMatch } from './hook-auth.ts'
import type { Logger } from './log.ts'
import type { Metrics } from './metrics.ts'
import type { ReadinessVerdict } from './readiness.ts'
import type { ScrapeTracker } from './final-scrape.ts'

export type ServerDeps = {
  coordinator: DrainCoordinator
  readiness: (signal?: AbortSignal) => Promise<ReadinessVerdict>
  metrics: Metrics
  log: Logger
  /** undefined: /prestop is open to anyone who can reach the port. */
  hookToken: HookTokenSource | undefined
  /** Told of every scrape, so the exit can wait for the one after the drain. */
  scrapes?: Pick<ScrapeTracker, 'scraped'>
}

const ROUTES = {
  '/prestop': ['GET', 'POST'],
  '/ready': ['GET', 'HEAD'],
  '/healthz': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
} as const satisfies Record<string, readonly string[]>
type Path = keyof typeof ROUTES
const isRoute = (path: string): path is Path => Object.hasOwn(ROUTES, path)

export function createServerApp({ coordinator, readiness, metrics, log, hookToken, scrapes }: ServerDeps): Hono {
  const app = new Hono()

  // The methods are checked once, here, against ROUTES: Hono would hand a HEAD to a GET handler, and a HEAD
  // (a link checker, a probe) must never start a drain.
  app.use('*', async (c, next) => {
    if (isRoute(c.req.path) && !(ROUTES[c.req.path] as readonly string[]).includes(c.req.method))
      return methodNotAllowed(c, ROUTES[c.req.path])
    await next()
  })
  const route = (path: Path, handler: Handler) => app.on([...ROUTES[path]], path, handler)

  // A held hook costs memory for as long as the drain runs, and 2000 may wait at once: the handler reads the
  // Node request (c.env.incoming) directly where it exists, so no web Request, Headers or AbortSignal is built
  // for it; app.request() in unit tests has no Node request and takes the web path.
  route('/prestop', async (c) => {
    const incoming = incomingOf(c.env)
    const header = (name: string) => (incoming ? singleHeader(incoming.headers[name]) : c.req.header(name))
    const caller = () => ({ userAgent: header('user-agent') ?? null, remote: incoming?.socket?.remoteAddress ?? null })
    if (hookToken !== undefined) {
      const expected = await hookToken()
      if (expected === undefined || !tokensMatch(expected, header(HOOK_TOKEN_HEADER))) {
        metrics.hookRequest('unauthorized')
        log.warn('hook_rejected', {
          reason: expected === undefined ? 'hook token file unreadable' : `missing or wrong ${HOOK_TOKEN_HEADER} header`,
          ...caller(),
        })
        return c.json({ error: 'unauthorized', message: `/prestop requires the ${HOOK_TOKEN_HEADER} header` }, 401)
      }
    }
    // The whole request must have arrived before a drain starts: a body that breaks off (a malformed chunk, a
    // hang-up) would otherwise start a drain that nobody is held for. No body is expected; a small one is dropped.
    const body = await (incoming ? readIncomingBody(incoming) : readWebBody(c.req.raw))
    if (body !== 'read') {
      metrics.hookRequest('bad_request')
      log.warn('hook_rejected', {
        reason: body === 'too-large' ? `request body over ${MAX_HOOK_BODY_BYTES} bytes` : 'request body broken off or malformed',
        ...caller(),
      })
      // A body that broke off leaves a connection that cannot carry another request. One too large is left to
      // Node, which reads the rest and drops it (bounded by requestTimeout): closing with it unread would reset
      // the connection under a client still sending, and it would never see the 413.
      if (body === 'broken') c.header('connection', 'close')
      return body === 'too-large'
        ? c.json(
            {
              error: 'payload too large',
              message: `/prestop takes no body (at most ${MAX_HOOK_BODY_BYTES} bytes, ignored); nothing started`,
            },
            413,
          )
        : c.json({ error: 'bad request', message: 'the request body broke off before its end; nothing started' }, 400)
    }
    const summary = await coordinator.start('hook', header('user-agent'))
    // A caller that hung up (kubelet gave up at the grace period, a client timeout) was not answered: say so.
    if (incoming ? incoming.socket?.destroyed !== false : c.req.raw.signal.aborted) {
      metrics.hookRequest('disconnected')
      log.info('hook_disconnected', { outcome: summary.outcome, ...caller() })
    } else metrics.hookRequest('answered')
    return c.body(summaryJson(summary), 200, { 'content-type': 'application/json' })
  })

  route('/ready', async (c) => {
    const verdict = await readiness(c.req.raw.signal)
    return c.json({ ready: verdict.ready, state: coordinator.state, reason: verdict.reason }, verdict.ready ? 200 : 503)
  })

  // Healthy while draining too: a failing liveness probe would get the sidecar restarted mid-drain.
  route('/healthz', (c) => c.json({ healthy: true, state: coordinator.state }))

  route('/metrics', async (c) => {
    const drained = coordinator.state === 'drained'
    const body = await metrics.render()
    // A HEAD (curl -I, a link checker) carries no metrics away: it is not the scrape the exit waits for.
    if (c.req.method !== 'HEAD') scrapes?.scraped(drained)
    return c.body(body, 200, { 'content-type': metrics.contentType })
  })

  app.notFound((c) => c.json({ error: 'not found', message: `no route ${c.req.path}; routes are ${Object.keys(ROUTES).join(', ')}` }, 404))

  app.onError((error, c) => {
    log.error('http_handler_failed', { path: c.req.path, method: c.req.method, error })
    return c.json({ error: 'internal error' }, 500)
  })

  return app
}

/** /prestop ignores its body; kubelet's httpGet hook sends none. */
export const MAX_HOOK_BODY_BYTES = 64 * 1024

/** Every held hook gets the same summary at the same instant: serialize it once, not 2000 times. */
const summaryJsons = new WeakMap<DrainSummary, string>()
function summaryJson(summary: DrainSummary): string {
  let json = summaryJsons.get(summary)
  if (json === undefined) summaryJsons.set(summary, (json = JSON.stringify(summary)))
  return json
}

type Body = 'read' | 'too-large' | 'broken'

/**
 * Reads and drops a Node request's body: 'read' once all of it has arrived (at once when it has none). After
 * 'too-large' the stream stays flowing without a listener, so the rest is dropped as it comes.
 */
function readIncomingBody(incoming: IncomingMessage): Promise<Body> {
  if (incoming.complete) return Promise.resolve('read')
  if (Number(incoming.headers['content-length'] ?? 0) > MAX_HOOK_BODY_BYTES) return Promise.resolve('too-large')
  return new Promise((resolve) => {
    let bytes = 0
    const finish = (result: Body) => {
      incoming.off('data', onData).off('end', onEnd).off('error', onEnd).off('close', onEnd)
      resolve(result)
    }
    const onData = (chunk: Buffer) => {
      bytes += chunk.byteLength
      if (bytes > MAX_HOOK_BODY_BYTES) finish('too-large')
    }
    // 'end' only when the parser saw the whole body; an error or a close before that is a body broken off.
    const onEnd = () => finish(incoming.complete ? 'read' : 'broken')
    incoming.on('data', onData).on('end', onEnd).on('error', onEnd).on('close', onEnd)
  })
}

/** The same for a web Request (unit tests through app.request), never holding more than one chunk. */
async function readWebBody(request: Request): Promise<Body> {
  if (Number(request.headers.get('content-length') ?? 0) > MAX_HOOK_BODY_BYTES) return 'too-large'
  if (request.body === null) return 'read'
  const reader = request.body.getReader()
  let bytes = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return 'read'
      bytes += value.byteLength
      if (bytes > MAX_HOOK_BODY_BYTES) {
        void reader.cancel().catch(() => {})
        return 'too-large'
      }
    }
  } catch {
    return 'broken'
  }
}

const singleHeader = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value)

function incomingOf(env: unknown): IncomingMessage | undefined {
  return (env as { incoming?: IncomingMessage } | undefined)?.incoming
}

function methodNotAllowed(c: Context, allowed: readonly string[]) {
  c.header('allow', allowed.join(', '))
  return c.json({ error: 'method not allowed', message: `${c.req.method} ${c.req.path}: use ${allowed.join(' or ')}` }, 405)
}
