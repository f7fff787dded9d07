#!/usr/bin/env node
/**
 * The composition root and the only module that reads process.env, reads files at start-up, installs signal
 * handlers and listens on a port: it builds the real clock, transports, clients and registry, and wires them
 * into the pieces the rest of src/ defines.
 */
import { readFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
// The default export, not a named one: an older Node must reach the bundle's version check instead of failing to link.
import nodeModule from 'node:module'
import type { Server as HttpServer } from 'node:http'
import { serve, type ServerType } from '@hono/node-server'
import { Registry } from 'prom-client'
import { systemClock } from './clock.ts'
import { type Config, describeConfig, parseConfig } from './config.ts'
import { ConfigError, describeError } from './errors.ts'
import { checkKubeAccess } from './kube/access-check.ts'
import { createKubeClient } from './kube/client.ts'
import { waitForEndpointRemoval } from './kube/endpoint-wait.ts'
import { createFileTokenSource } from './kube/token.ts'
import { createLogger, type Logger } from './log.ts'
import { createMetrics } from './metrics.ts'
import { createReadinessCheck } from './readiness.ts'
import { createServerApp } from './server.ts'
import { installSignalHandlers } from './signals.ts'
import { createDrainCoordinator } from './drain.ts'
import { createScrapeTracker } from './final-scrape.ts'
import { createFetch } from './transport.ts'
import { USER_AGENT, VERSION } from './version.ts'

/** How long to let answered hooks flush before exiting anyway. */
const CLOSE_GRACE_MS = 2_000

/**
 * Limits on the one HTTP port. Node's requestTimeout bounds receiving a request (not a held answer), but it is
 * kept above DRAIN_TIMEOUT anyway so no setting of it can ever cut a /prestop short; headersTimeout stops
 * clients that dribble headers; the check interval makes both act within a second rather than Node's 30 s.
 */
function serverOptions(timeoutMs: number) {
  return {
    headersTimeout: 10_000,
    requestTimeout: timeoutMs + 30_000,
    keepAliveTimeout: 5_000,
    connectionsCheckingInterval: 1_000,
    maxHeaderSize: 16 * 1024,
  }
}

/**
 * Stops accepting and lets answered hooks flush. Resolves 'closed' once the server has closed, or 'grace-expired'
 * after CLOSE_GRACE_MS with connections still open.
 */
function closeGracefully(server: HttpServer): Promise<'closed' | 'grace-expired'> {
  return new Promise((resolve) => {
    setTimeout(() => resolve('grace-expired'), CLOSE_GRACE_MS).unref()
    // close() drops only the connections idle at that instant; a hook connection that finishes its answer a
    // moment later would hold the exit for the keep-alive timeout (or CLOSE_GRACE_MS) without this sweep.
    const sweep = setInterval(() => server.closeIdleConnections(), 50).unref()
    server.close(() => {
      clearInterval(sweep)
      resolve('closed')
    })
    server.closeIdleConnections()
  })
}

function fail(message: string): never {
  process.stderr.write(`drain-coordinator: ${message}\n`)
  process.exit(2)
}

function loadConfig(): Config {
  try {
    return parseConfig(process.env)
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message)
    throw error
  }
}

function readCa(config: Config): string | undefined {
  if (config.kube === undefined || !config.kube.apiUrl.startsWith('https:')) return undefined
  try {
    return readFileSync(config.kube.caFile, 'utf8')
  } catch (error) {
    fail(`DRAIN_KUBE_CA_FILE=${JSON.stringify(config.kube.caFile)} cannot be read (${describeError(error)}): expected the PEM CA bundle the API server's certificate chains to (the service account's ca.crt)`)
  }
}

function listen(app: { fetch: (request: Request, env: unknown) => Response | Promise<Response> }, config: Config, log: Logger): Promise<ServerType> {
  const start = (hostname: string) =>
    new Promise<ServerType>((resolve, reject) => {
      const server = serve({ fetch: app.fetch, port: config.port, hostname, serverOptions: serverOptions(config.timeoutMs) }, () => resolve(server))
      server.once('error', reject)
    })
  if (config.host !== undefined) return start(config.host)
  // '::' takes IPv4 too (dual-stack socket); a node with IPv6 disabled needs the IPv4 wildcard instead.
  return start('::').catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EAFNOSUPPORT' && error.code !== 'EADDRNOTAVAIL') throw error
    log.warn('ipv6_unavailable', { error: describeError(error), listen: '0.0.0.0' })
    return start('0.0.0.0')
  })
}

async function main(): Promise<void> {
  const config = loadConfig()
  const ca = readCa(config)
  const clock = systemClock
  const log = createLogger((line) => process.stdout.write(line), clock)
  const metrics = createMetrics(new Registry(), { version: VERSION })
  const sideFetch = createFetch({ bodyTimeoutMs: config.sideCallTimeoutMs, userAgent: USER_AGENT })

  let waitForEndpoints: ((signal: AbortSignal) => ReturnType<typeof waitForEndpointRemoval>) | undefined
  let checkAccess: (() => Promise<unknown>) | undefined
  if (config.kube !== undefined) {
    const kubeConfig = config.kube
    // No userAgent here: the Kubernetes requests set their own (kube/request.ts).
    const kubeFetch = createFetch({ ca })
    const kubeToken = createFileTokenSource(kubeConfig.tokenFile, {
      clock,
      readFile: (path) => readFile(path, 'utf8'),
      onError: (error) => log.warn('kube_token_unreadable', { file: kubeConfig.tokenFile, error: describeError(error) }),
    })
    checkAccess = () =>
      checkKubeAccess({ apiUrl: kubeConfig.apiUrl, namespace: config.pod.namespace!, fetch: kubeFetch, token: kubeToken, clock, log, userAgent: USER_AGENT })
    const kube = createKubeClient({
      apiUrl: kubeConfig.apiUrl,
      namespace: config.pod.namespace!,
      fetch: kubeFetch,
      token: kubeToken,
      clock,
      userAgent: USER_AGENT,
      onRequest: metrics.kubeRequest,
    })
    waitForEndpoints = (signal) =>
      waitForEndpointRemoval({ kube, clock, log, pod: config.pod, mode: config.endpointMode, pollIntervalMs: config.pollIntervalMs }, signal)
  }

  const coordinator = createDrainCoordinator({
    clock,
    log,
    metrics,
    appFetch: sideFetch,
    envoyFetch: sideFetch,
    waitForEndpoints,
    config,
  })
  const readiness = createReadinessCheck({
    state: () => coordinator.state,
    upstream: config.readinessUpstream,
    fetch: sideFetch,
    clock,
    timeoutMs: config.sideCallTimeoutMs,
  })
  const hookToken = config.hookToken
  const scrapes = createScrapeTracker(clock)
  const app = createServerApp({
    coordinator,
    readiness,
    metrics,
    log,
    scrapes,
    hookToken:
      hookToken === undefined
        ? undefined
        : 'value' in hookToken
          ? async () => hookToken.value
          : async () => (await readFile(hookToken.file, 'utf8').catch(() => '')).trim() || undefined,
  })

  // Before listening: a SIGTERM that arrives while the port opens must already start a drain.
  let server: ServerType | undefined
  installSignalHandlers(process, {
    coordinator,
    log,
    beforeExit: async () => log.info('final_scrape', await scrapes.waitForFinalScrape(config.finalScrapeWaitMs)),
    closeServer: async () => {
      if (server !== undefined) log.info('server_closed', { how: await closeGracefully(server as HttpServer) })
    },
    exit: (code) => process.exit(code),
  })

  server = await listen(app, config, log).catch((error: NodeJS.ErrnoException) =>
    fail(`cannot listen on ${config.host ?? '[::]'}:${config.port} (DRAIN_HOST, DRAIN_PORT): ${error.code ?? describeError(error)}`),
  )
  const address = server.address()
  log.info('started', { version: VERSION, listening: typeof address === 'object' && address ? `${address.address}:${address.port}` : address, config: describeConfig(config) })
  if (config.kube === undefined) {
    log.warn('endpoint_wait_disabled', { reason: 'no API server configured (DRAIN_KUBE_API_URL, or KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT)', effect: 'a drain waits only DRAIN_SETTLE' })
  }
  // After listen: the check must never delay serving, and never end the process (it logs, it does not throw).
  void checkAccess?.().catch((error: unknown) => log.warn('kube_access_unchecked', { error: describeError(error) }))
  // With NODE_COMPILE_CACHE set (README, "Footprint"), write what start-up compiled now rather than at exit, which a
  // SIGKILL never reaches; without it this does nothing. A cache directory that cannot be written is ignored.
  nodeModule.flushCompileCache()
}

await main()
