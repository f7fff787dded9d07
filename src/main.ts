/**
 * The composition root and the only module that reads process.env, reads files at start-up, installs signal
 * handlers and listens on a port: it builds the real clock, transports, clients and registry, and wires them
 * into the pieces the rest of src/ defines.
 */
import { readFile, readdir, readlink } from 'node:fs/promises'
import { text } from 'node:stream/consumers'
import { flushCompileCache } from 'node:module'
import { setFlagsFromString } from 'node:v8'
import type { Server as HttpServer } from 'node:http'
import { serve, type ServerType } from '@hono/node-server'
import type { collectDefaultMetrics } from 'prom-client'
import { createCaBundleWatcher, countCaCertificates } from './ca-bundle.ts'
import { systemClock } from './clock.ts'
import { type Config, describeConfig, parseConfig } from './config.ts'
import { ConfigError, describeError } from './errors.ts'
import { checkKubeAccess } from './kube/access-check.ts'
import { createKubeClient } from './kube/client.ts'
import { waitForEndpointRemoval } from './kube/endpoint-wait.ts'
import { readPodDeletion } from './kube/pod.ts'
import { createEventRecorder, type EventRecorder } from './kube/events.ts'
import { createFileTokenSource, staticToken } from './kube/token.ts'
import { createLogger, type Logger } from './log.ts'
import { addProcessMetrics, createMetrics } from './metrics.ts'
import { Registry } from './prom-client-classes.ts'
import { createReadinessCheck } from './readiness.ts'
import { createServerApp } from './server.ts'
import { installSignalHandlers } from './signals.ts'
import { installLastResort } from './last-resort.ts'
import { createDrainCoordinator, type DrainDeps } from './drain.ts'
import { createScrapeTracker } from './final-scrape.ts'
import { FILE_LIMITS, FileTooLargeError, readBoundedFile } from './files.ts'
import { createFetch } from './transport.ts'
import { appMetricSource, envoyStatsSource } from './traffic/counter-source.ts'
import { createTrafficObserver, type ProcReader } from './traffic/observer.ts'
import { createOwnConnections } from './traffic/own-connections.ts'
import { combineSources } from './traffic/sources.ts'
import { applyV8FlagsAfterStart } from './v8-flags.ts'
import { USER_AGENT, VERSION } from './version.ts'

/** The traffic gate's view of the pod's network namespace: /proc files, and the sockets this process holds. */
const procReader: ProcReader = {
  readFile: (path) => readFile(path, 'utf8'),
  async ownSocketInodes() {
    const inodes = new Set<string>()
    for (const fd of await readdir('/proc/self/fd')) {
      // An fd closed between the listing and the readlink is simply not ours any more.
      const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '')
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1]
      if (inode !== undefined) inodes.add(inode)
    }
    return inodes
  },
}

/** Margin kept before the pod's deletionTimestamp when waiting for the final scrape: the kubelet's clock may differ. */
const FINAL_SCRAPE_KILL_MARGIN_MS = 2_000

/** The final-scrape wait, shortened so it ends before the kubelet's SIGKILL when the pod's deletion time is known. */
function finalScrapeWaitMs(configuredMs: number, killAt: string | undefined, now: Date): number {
  if (killAt === undefined) return configuredMs
  return Math.max(0, Math.min(configuredMs, Date.parse(killAt) - now.getTime() - FINAL_SCRAPE_KILL_MARGIN_MS))
}

/** Longest wait on the way out for the drain's last Event to reach the API server. */
const EVENT_FLUSH_MS = 1_000

/** How long to let answered hooks flush before exiting anyway. */
const CLOSE_GRACE_MS = 2_000

/**
 * Limits on the one HTTP port. Node's requestTimeout bounds receiving a request (not a held answer), but it is
 * kept above DRAIN_TIMEOUT anyway so no setting of it can ever cut a /prestop short; headersTimeout
 * (DRAIN_HEADERS_TIMEOUT) stops clients that dribble headers; the check interval makes both act within a second
 * (or half the headers timeout) rather than Node's 30 s.
 */
function serverOptions(config: Pick<Config, 'timeoutMs' | 'headersTimeoutMs'>) {
  return {
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.timeoutMs + 30_000,
    keepAliveTimeout: 5_000,
    connectionsCheckingInterval: Math.min(1_000, Math.ceil(config.headersTimeoutMs / 2)),
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

const readCaBundle = (path: string) => readBoundedFile(path, FILE_LIMITS.caBundle, 'CA bundle')
const readToken = (what: string) => (path: string) => readBoundedFile(path, FILE_LIMITS.token, what)

/** A size-limit error's figures as log fields: the file, its size and the limit. */
const sizeFields = (error: unknown) => (error instanceof FileTooLargeError ? { bytes: error.bytes, limitBytes: error.limitBytes } : {})

async function readCa(config: Config): Promise<string | undefined> {
  if (config.kube === undefined || !config.kube.apiUrl.startsWith('https:')) return undefined
  try {
    const pem = await readCaBundle(config.kube.caFile)
    countCaCertificates(pem)
    return pem
  } catch (error) {
    fail(
      `DRAIN_KUBE_CA_FILE=${JSON.stringify(config.kube.caFile)} cannot be used (${describeError(error)}): expected the PEM CA bundle the API server's certificate chains to (the service account's ca.crt), at most ${FILE_LIMITS.caBundle} bytes`,
    )
  }
}

function listen(
  app: { fetch: (request: Request, env: unknown) => Response | Promise<Response> },
  config: Config,
  log: Logger,
): Promise<ServerType> {
  const start = (hostname: string) =>
    new Promise<ServerType>((resolve, reject) => {
      const server = serve({ fetch: app.fetch, port: config.port, hostname, serverOptions: serverOptions(config) }, () => resolve(server))
      server.once('error', reject)
    })
  if (config.host !== undefined) return start(config.host)
  // '::' takes IPv4 too (dual-stack socket); a node with IPv6 disabled needs the IPv4 wildcard instead.
  return start('::').catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EAFNOSUPPORT' && error.code !== 'EADDRNOTAVAIL') throw error
    log.warn('ipv6_unavailable', { error, listen: '0.0.0.0' })
    return start('0.0.0.0')
  })
}

async function main(): Promise<void> {
  const config = loadConfig()
  const ca = await readCa(config)
  const clock = systemClock
  // A log line that cannot be written (the reader of stdout is gone: EPIPE) is lost, and nothing more: an 'error'
  // event with no listener would end the process, and with it every held hook, long before its evidence.
  process.stdout.on('error', () => {})
  process.stderr.on('error', () => {})
  const log = createLogger((line) => process.stdout.write(line), clock)
  const registry = new Registry()
  const metrics = createMetrics(registry, { version: VERSION })
  // From here on an error nothing caught is logged and counted, never the end of the process (last-resort.ts).
  const reportUnexpected = installLastResort(process, { log, count: metrics.unexpectedError })
  // Every connection the side calls open is remembered, so the traffic gate never counts the sidecar's own calls.
  const ownConnections = createOwnConnections(clock)
  const sideFetch = createFetch({ bodyTimeoutMs: config.sideCallTimeoutMs, userAgent: USER_AGENT, onConnect: ownConnections.record })
  const sideCallDeps = { fetch: sideFetch, clock, timeoutMs: config.sideCallTimeoutMs }
  const counterSources = [
    ...(config.envoyAdminUrl === undefined ? [] : [envoyStatsSource(config.envoyAdminUrl, sideCallDeps)]),
    ...(config.trafficMetric === undefined ? [] : [appMetricSource(config.trafficMetric.url, config.trafficMetric.selector, sideCallDeps)]),
  ]

  let waitForEndpoints: ((signal: AbortSignal) => ReturnType<typeof waitForEndpointRemoval>) | undefined
  let checkAccess: (() => Promise<unknown>) | undefined
  let readDeletion: DrainDeps['readDeletion']
  let events: EventRecorder | undefined
  if (config.kube !== undefined) {
    const kubeConfig = config.kube
    // No userAgent here: the Kubernetes requests set their own (kube/request.ts). A certificate that fails to
    // verify makes the CA bundle be read again (a rotated cluster CA) before the caller retries.
    const caBundle =
      ca === undefined
        ? undefined
        : createCaBundleWatcher({
            file: kubeConfig.caFile,
            initial: ca,
            read: readCaBundle,
            apply: (pem) => kubeFetch.setCa(pem),
            clock,
            log,
          })
    const kubeFetch = createFetch({ ca, onCertificateError: async () => caBundle?.check('certificate-error') })
    void caBundle?.run()
    const kubeToken = createFileTokenSource(kubeConfig.tokenFile, {
      clock,
      readFile: readToken('bearer token file'),
      onError: (error) => log.warn('kube_token_unreadable', { file: kubeConfig.tokenFile, error, ...sizeFields(error) }),
    })
    checkAccess = () =>
      checkKubeAccess({
        apiUrl: kubeConfig.apiUrl,
        namespace: config.pod.namespace!,
        fetch: kubeFetch,
        token: kubeToken,
        clock,
        log,
        userAgent: USER_AGENT,
      })
    const kube = createKubeClient({
      apiUrl: kubeConfig.apiUrl,
      namespace: config.pod.namespace!,
      fetch: kubeFetch,
      token: kubeToken,
      clock,
      userAgent: USER_AGENT,
      onRequest: metrics.kubeRequest,
      onInvalidObject: metrics.kubeInvalidObject,
    })
    const podName = config.pod.name
    if (podName !== undefined) {
      readDeletion = async (signal) => {
        const { deletionTimestamp, gracePeriodSeconds } = await readPodDeletion(
          {
            apiUrl: kubeConfig.apiUrl,
            namespace: config.pod.namespace!,
            name: podName,
            uid: config.pod.uid,
            fetch: kubeFetch,
            token: kubeToken,
            clock,
            userAgent: USER_AGENT,
          },
          signal,
        )
        return deletionTimestamp === undefined ? undefined : { deletionTimestamp, gracePeriodSeconds }
      }
      events = createEventRecorder({
        apiUrl: kubeConfig.apiUrl,
        namespace: config.pod.namespace!,
        pod: { name: podName, uid: config.pod.uid },
        fetch: kubeFetch,
        token: kubeToken,
        clock,
        userAgent: USER_AGENT,
        log,
      })
    }
    waitForEndpoints = (signal) =>
      waitForEndpointRemoval(
        { kube, clock, log, pod: config.pod, mode: config.endpointMode, pollIntervalMs: config.pollIntervalMs },
        signal,
      )
  }

  const coordinator = createDrainCoordinator({
    clock,
    log,
    metrics,
    appFetch: sideFetch,
    envoyFetch: sideFetch,
    waitForEndpoints,
    readDeletion,
    recordEvent: events === undefined ? undefined : ({ type, reason, message }) => events!.record(type, reason, message),
    trafficObserver: () =>
      combineSources(
        createTrafficObserver({
          read: procReader,
          appPorts: config.appPorts,
          hostIps: config.hostIps,
          sidecarPort: config.port,
          useCounter: config.trafficCounter,
          ownLocalEnds: ownConnections.ends,
        }),
        counterSources.map((source) => source()),
        log,
      ),
    config,
  })
  const readiness = createReadinessCheck({
    state: () => coordinator.state,
    upstream: config.readinessUpstream,
    fetch: sideFetch,
    clock,
    timeoutMs: config.sideCallTimeoutMs,
  })
  // Re-read on every /prestop, so a rotated Secret counts at once; a read that fails (EMFILE with 2000 hooks held,
  // a file over its limit) keeps the last token read rather than refuse kubelet's hook, which would release it.
  // Only a file never read refuses every hook (fails closed).
  const hookToken = config.hookToken
  const hookTokenSource =
    hookToken === undefined
      ? undefined
      : 'value' in hookToken
        ? staticToken(hookToken.value)
        : createFileTokenSource(hookToken.file, {
            clock,
            readFile: readToken('hook token file'),
            onError: (error) => log.warn('hook_token_unreadable', { file: hookToken.file, error, ...sizeFields(error) }),
            maxAgeMs: 0,
          })
  const scrapes = createScrapeTracker(clock)
  const app = createServerApp({
    coordinator,
    readiness,
    metrics,
    log,
    scrapes,
    hookToken: hookTokenSource && (() => hookTokenSource.get()),
  })

  // Before listening: a SIGTERM that arrives while the port opens must already start a drain.
  let server: ServerType | undefined
  installSignalHandlers(process, {
    coordinator,
    log,
    beforeExit: async (cut) => {
      // The last Event was started at the release; give it a moment, never more, before the process may exit.
      await events?.flush(EVENT_FLUSH_MS)
      log.info(
        'final_scrape',
        await scrapes.waitForFinalScrape(
          finalScrapeWaitMs(config.finalScrapeWaitMs, coordinator.summary?.deadline.killAt, clock.wallTime()),
          cut,
        ),
      )
    },
    closeServer: async () => {
      if (server !== undefined) log.info('server_closed', { how: await closeGracefully(server as HttpServer) })
    },
    exit: (code) => process.exit(code),
  })

  server = await listen(app, config, log).catch((error: NodeJS.ErrnoException) =>
    fail(`cannot listen on ${config.host ?? '[::]'}:${config.port} (DRAIN_HOST, DRAIN_PORT): ${error.code ?? describeError(error)}`),
  )
  // The port is open and a hook may already be held: from here on nothing may end the process (main's caller
  // exits on a failed start-up), so an error in what follows goes to the last resort and the sidecar serves on.
  try {
    afterListen(server)
  } catch (error) {
    reportUnexpected('uncaughtException', error)
  }

  function afterListen(server: ServerType): void {
    const address = server.address()
    log.info('started', {
      version: VERSION,
      listening: typeof address === 'object' && address ? `${address.address}:${address.port}` : address,
      config: describeConfig(config),
    })
    if (config.kube === undefined) {
      log.warn('endpoint_wait_disabled', {
        reason: 'no API server configured (DRAIN_KUBE_API_URL, or KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT)',
        effect: 'a drain waits only DRAIN_SETTLE',
      })
    }
    // After listen: the check must never delay serving, and never end the process (it logs, it does not throw).
    void checkAccess?.().catch((error: unknown) => log.warn('kube_access_unchecked', { error }))
    // Node's process metrics, once the port is open: prom-client's collector and what it loads (perf_hooks, v8,
    // OpenTelemetry's API for exemplars) are start-up time nothing on the way to serving needs (README, "Footprint").
    void import('prom-client/lib/defaultMetrics.js')
      .then(({ default: collect }: { default: typeof collectDefaultMetrics }) => addProcessMetrics(registry, collect))
      .catch((error: unknown) => log.warn('process_metrics_unavailable', { error }))
    // With NODE_COMPILE_CACHE set (README, "Footprint"), write what start-up compiled now rather than at exit, which
    // a SIGKILL never reaches; without it this does nothing. A cache directory that cannot be written is ignored.
    flushCompileCache()
    // Only now: on the command line they would have cost the start-up above (v8-flags.ts says why), and after the
    // flush, because V8 stamps a code cache with the flags in force when it is written and rejects it under others.
    applyV8FlagsAfterStart(setFlagsFromString)
  }
}

if (process.argv[2] === 'inject') {
  // A subcommand of the same bundle (README, Adding it to a pod): no configuration read, no port opened.
  const { runInject } = await import('./inject/cli.ts')
  process.exitCode = await runInject(process.argv.slice(3), {
    readFile: (path) => readFile(path, 'utf8'),
    readStdin: () => text(process.stdin),
    write: (output) => process.stdout.write(output),
    warn: (line) => process.stderr.write(line),
  })
} else {
  // A start-up step that fails before the port is open ends the process with status 2 and one line, like a bad
  // setting, rather than leave it half started; main catches what may fail once it listens. (An error thrown from
  // a callback, before or after, is the last resort's: logged, counted, survived.)
  await main().catch((error: unknown) => fail(`start-up failed: ${describeError(error)}`))
}
