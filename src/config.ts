/**
 * The configuration: every DRAIN_* and POD_* variable is read here and nowhere else, validated once at start-up
 * into a frozen object. Pure: takes the environment as a plain record. The first bad variable throws a
 * ConfigError naming the variable, the value and what is accepted.
 */
import { DURATION_FORM, parseDuration } from './duration.ts'
import { ConfigError } from './errors.ts'
import { canonicalIp, parseIpList } from './ip.ts'
import { ENDPOINT_MODES, type EndpointMode, type PodIdentity } from './kube/types.ts'
import { type Selector, SelectorError, parseSelector } from './traffic/prom-text.ts'

export { ENDPOINT_MODES, type EndpointMode, type PodIdentity }

export type Env = Readonly<Record<string, string | undefined>>

export type KubeConfig = Readonly<{
  apiUrl: string
  tokenFile: string
  caFile: string
}>

export type HookTokenConfig = Readonly<{ value: string } | { file: string }>

export type Config = Readonly<{
  port: number
  /** undefined: every interface, IPv4 and IPv6. */
  host: string | undefined
  pod: PodIdentity
  appShutdownUrl: string | undefined
  readinessUpstream: string | undefined
  envoyAdminUrl: string | undefined
  /** undefined: no API server configured; the endpoint wait is skipped. */
  kube: KubeConfig | undefined
  endpointMode: EndpointMode
  pollIntervalMs: number
  settleMs: number
  timeoutMs: number
  /** Bound on each call to the app, to Envoy and to the readiness upstream. */
  sideCallTimeoutMs: number
  hookToken: HookTokenConfig | undefined
  /** Longest wait, on the way out, for one scrape of the drain's final metrics; 0: exit at once. */
  finalScrapeWaitMs: number
  /** Time a client gets to send a request's headers on the sidecar's port (slow-client defence). */
  headersTimeoutMs: number
  /** Traffic-quiet gate: release once no traffic for this long (0: fixed settle of settleMs, the upper bound). */
  quietPeriodMs: number
  /** The settle's floor. */
  settleMinMs: number
  /** DRAIN_APP_PORTS; undefined: found from the listening sockets that are not the sidecar's. */
  appPorts: readonly number[] | undefined
  /** HOST_IP (Downward API status.hostIPs or status.hostIP): the node's addresses, canonical. */
  hostIps: readonly string[]
  /** Left for the app between the release and the pod's deletionTimestamp (the kubelet's SIGKILL). */
  appReserveMs: number
  /** DRAIN_TRAFFIC_COUNTER: whether the traffic gate reads Tcp PassiveOpens. */
  trafficCounter: boolean
  /** DRAIN_TRAFFIC_METRIC_URL and DRAIN_TRAFFIC_METRIC: the app's own request counter, a traffic source. */
  trafficMetric: Readonly<{ url: string; selector: Selector }> | undefined
}>

export const DEFAULTS = Object.freeze({
  port: 8099,
  tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
  caFile: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
  endpointMode: 'watch' as EndpointMode,
  pollInterval: '1s',
  settle: '5s',
  timeout: '20s',
  finalScrapeWait: '15s',
  headersTimeout: '10s',
  sideCallTimeoutMs: 2_000,
  quietPeriod: '1s',
  settleMin: '0s',
  appReserve: '10s',
})

/** Clients (kubelet, Prometheus, curl) send their headers in one packet; a minute is already generous. */
const MAX_HEADERS_TIMEOUT_MS = 60_000

/** Polling faster than this would only load the API server. */
const MIN_POLL_MS = 50

export function parseConfig(env: Env): Config {
  const timeoutMs = readDuration(env, 'DRAIN_TIMEOUT', DEFAULTS.timeout, { min: 1 })
  const settleMs = readDuration(env, 'DRAIN_SETTLE', DEFAULTS.settle, { min: 0 })
  if (settleMs >= timeoutMs) throw settleVersusTimeout(read(env, 'DRAIN_SETTLE'), read(env, 'DRAIN_TIMEOUT'))
  const settleMinMs = readDuration(env, 'DRAIN_SETTLE_MIN', DEFAULTS.settleMin, { min: 0 })
  if (settleMinMs > settleMs) {
    throw new ConfigError(
      'DRAIN_SETTLE_MIN',
      read(env, 'DRAIN_SETTLE_MIN') ?? '',
      `a duration no longer than DRAIN_SETTLE (${read(env, 'DRAIN_SETTLE') ?? `${DEFAULTS.settle}, the default`})`,
    )
  }
  const pod = readPod(env)
  const kube = readKube(env)
  if (kube && pod.namespace === undefined) {
    throw new ConfigError('POD_NAMESPACE', '', "the pod's namespace (Downward API metadata.namespace) when an API server is configured")
  }
  if (kube && pod.uid === undefined && pod.name === undefined && pod.ips.length === 0) {
    throw new ConfigError('POD_UID', '', 'at least one of POD_UID, POD_NAME or POD_IP (Downward API) to find this pod in EndpointSlices')
  }
  return Object.freeze({
    port: readPort(env, 'DRAIN_PORT', DEFAULTS.port),
    host: readHost(env, 'DRAIN_HOST'),
    pod,
    appShutdownUrl: readUrl(env, 'DRAIN_APP_SHUTDOWN_URL'),
    readinessUpstream: readUrl(env, 'DRAIN_READINESS_UPSTREAM'),
    envoyAdminUrl: readUrl(env, 'DRAIN_ENVOY_ADMIN_URL'),
    kube,
    endpointMode: readOneOf(env, 'DRAIN_ENDPOINT_MODE', ENDPOINT_MODES, DEFAULTS.endpointMode),
    pollIntervalMs: readDuration(env, 'DRAIN_POLL_INTERVAL', DEFAULTS.pollInterval, { min: MIN_POLL_MS }),
    settleMs,
    timeoutMs,
    sideCallTimeoutMs: DEFAULTS.sideCallTimeoutMs,
    hookToken: readHookToken(env),
    finalScrapeWaitMs: readDuration(env, 'DRAIN_FINAL_SCRAPE_WAIT', DEFAULTS.finalScrapeWait, { min: 0 }),
    headersTimeoutMs: readHeadersTimeout(env),
    quietPeriodMs: readDuration(env, 'DRAIN_QUIET_PERIOD', DEFAULTS.quietPeriod, { min: 0 }),
    settleMinMs,
    appPorts: readPortList(env, 'DRAIN_APP_PORTS'),
    hostIps: readHostIps(env),
    appReserveMs: readDuration(env, 'DRAIN_APP_RESERVE', DEFAULTS.appReserve, { min: 0 }),
    trafficCounter: readOneOf(env, 'DRAIN_TRAFFIC_COUNTER', ['on', 'off'] as const, 'on') === 'on',
    trafficMetric: readTrafficMetric(env),
  })
}

/** The configuration as it is safe to log: no token values. */
export function describeConfig(config: Config): Record<string, unknown> {
  return {
    port: config.port,
    host: config.host ?? '::',
    pod: config.pod,
    appShutdownUrl: config.appShutdownUrl ?? null,
    readinessUpstream: config.readinessUpstream ?? null,
    envoyAdminUrl: config.envoyAdminUrl ?? null,
    kubeApiUrl: config.kube?.apiUrl ?? null,
    kubeTokenFile: config.kube?.tokenFile ?? null,
    kubeCaFile: config.kube?.caFile ?? null,
    endpointMode: config.endpointMode,
    pollIntervalMs: config.pollIntervalMs,
    settleMs: config.settleMs,
    timeoutMs: config.timeoutMs,
    hookToken: config.hookToken === undefined ? 'off' : 'file' in config.hookToken ? `file ${config.hookToken.file}` : 'set',
    finalScrapeWaitMs: config.finalScrapeWaitMs,
    headersTimeoutMs: config.headersTimeoutMs,
    quietPeriodMs: config.quietPeriodMs,
    settleMinMs: config.settleMinMs,
    appPorts: config.appPorts ?? 'listening',
    hostIps: config.hostIps,
    appReserveMs: config.appReserveMs,
    trafficCounter: config.trafficCounter,
    trafficMetric:
      config.trafficMetric === undefined ? null : { url: config.trafficMetric.url, selector: config.trafficMetric.selector.text },
  }
}

const SELECTOR_FORM =
  'a Prometheus series selector: a metric name with optional label matchers (=, !=, =~, !~), such as http_requests_total{path!="/ready"}'

/** Both or neither: a URL without a series to sum, or a series without a URL, is a half-done configuration. */
function readTrafficMetric(env: Env): Config['trafficMetric'] {
  const url = readUrl(env, 'DRAIN_TRAFFIC_METRIC_URL')
  const raw = read(env, 'DRAIN_TRAFFIC_METRIC')
  if (url === undefined && raw === undefined) return undefined
  if (raw === undefined) throw new ConfigError('DRAIN_TRAFFIC_METRIC', '', `${SELECTOR_FORM}, set together with DRAIN_TRAFFIC_METRIC_URL`)
  if (url === undefined)
    throw new ConfigError(
      'DRAIN_TRAFFIC_METRIC_URL',
      '',
      "the app's Prometheus metrics URL (an absolute http:// or https:// URL, such as http://127.0.0.1:8080/metrics), set together with DRAIN_TRAFFIC_METRIC",
    )
  try {
    return Object.freeze({ url, selector: parseSelector(raw) })
  } catch (error) {
    if (!(error instanceof SelectorError)) throw error
    throw new ConfigError('DRAIN_TRAFFIC_METRIC', raw, `${SELECTOR_FORM} (${error.message})`)
  }
}

function readHeadersTimeout(env: Env): number {
  const ms = readDuration(env, 'DRAIN_HEADERS_TIMEOUT', DEFAULTS.headersTimeout, { min: 100 })
  if (ms > MAX_HEADERS_TIMEOUT_MS)
    throw new ConfigError('DRAIN_HEADERS_TIMEOUT', read(env, 'DRAIN_HEADERS_TIMEOUT')!, `${DURATION_FORM}, from 100ms up to 1m`)
  return ms
}

// An empty variable counts as unset: that is what `env: - name: X value: ""` means to users.
function read(env: Env, name: string): string | undefined {
  const value = env[name]?.trim()
  return value === undefined || value === '' ? undefined : value
}

/** No wait of a pod's termination needs more; beyond it a value is a typo (`20h` for `20s`). */
const MAX_DURATION_MS = 24 * 3_600_000

function readDuration(env: Env, name: string, fallback: string, { min }: { min: number }): number {
  const raw = read(env, name) ?? fallback
  const ms = parseDuration(raw)
  if (ms === undefined || ms < min || ms > MAX_DURATION_MS) {
    throw new ConfigError(name, raw, `${DURATION_FORM}, ${min > 0 ? `from ${min}ms ` : ''}up to 24h`)
  }
  return ms
}

/**
 * DRAIN_SETTLE must be shorter than DRAIN_TIMEOUT. Blame the variable the user set, and say when the other value
 * is a default they may never have seen (DRAIN_TIMEOUT=3s against the default 5s settle).
 */
function settleVersusTimeout(settle: string | undefined, timeout: string | undefined): ConfigError {
  if (settle === undefined) {
    return new ConfigError(
      'DRAIN_TIMEOUT',
      timeout ?? DEFAULTS.timeout,
      `a duration longer than DRAIN_SETTLE (${DEFAULTS.settle}, the default; set DRAIN_SETTLE lower to allow a shorter timeout)`,
    )
  }
  const against = timeout === undefined ? `${DEFAULTS.timeout}, the default` : timeout
  return new ConfigError('DRAIN_SETTLE', settle, `a duration shorter than DRAIN_TIMEOUT (${against})`)
}

function readPort(env: Env, name: string, fallback: number): number {
  const raw = read(env, name)
  if (raw === undefined) return fallback
  const port = /^\d{1,5}$/.test(raw) ? Number(raw) : Number.NaN
  if (!(port >= 1 && port <= 65_535)) throw new ConfigError(name, raw, 'a port number from 1 to 65535')
  return port
}

function readPortList(env: Env, name: string): readonly number[] | undefined {
  const raw = read(env, name)
  if (raw === undefined) return undefined
  const ports = raw.split(',').map((part) => part.trim())
  if (!ports.every((part) => /^\d{1,5}$/.test(part) && Number(part) >= 1 && Number(part) <= 65_535)) {
    throw new ConfigError(name, raw, 'port numbers from 1 to 65535 separated by commas, such as 8080,8443')
  }
  return Object.freeze([...new Set(ports.map(Number))])
}

function readHostIps(env: Env): readonly string[] {
  const raw = read(env, 'HOST_IP')
  if (raw === undefined) return Object.freeze([])
  const ips = parseIpList(raw)
  if (ips === undefined)
    throw new ConfigError(
      'HOST_IP',
      raw,
      "the node's IP address, or several separated by commas (Downward API status.hostIPs or status.hostIP)",
    )
  return Object.freeze(ips)
}

function readHost(env: Env, name: string): string | undefined {
  const raw = read(env, name)
  if (raw === undefined) return undefined
  const bare = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw
  const ip = canonicalIp(bare)
  if (ip !== undefined) return ip
  if (/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/i.test(raw)) return raw
  throw new ConfigError(name, raw, 'an IP address or host name to bind to (unset: every interface)')
}

function readUrl(env: Env, name: string): string | undefined {
  const raw = read(env, name)
  if (raw === undefined) return undefined
  return parseHttpUrl(name, raw).href
}

function parseHttpUrl(name: string, raw: string): URL {
  const accepts = 'an absolute http:// or https:// URL without credentials, such as http://127.0.0.1:8080/shutdown'
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ConfigError(name, raw, accepts)
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password || url.hostname === '') {
    throw new ConfigError(name, raw, accepts)
  }
  return url
}

function readOneOf<const T extends readonly string[]>(env: Env, name: string, allowed: T, fallback: T[number]): T[number] {
  const raw = read(env, name) ?? fallback
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(name, raw, `one of ${allowed.join(', ')}`)
  return raw as T[number]
}

function readPod(env: Env): PodIdentity {
  const namespace = read(env, 'POD_NAMESPACE')
  if (namespace !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) {
    throw new ConfigError('POD_NAMESPACE', namespace, 'a Kubernetes namespace name (lower-case DNS label)')
  }
  const rawIps = read(env, 'POD_IP')
  const ips = rawIps === undefined ? [] : parseIpList(rawIps)
  if (ips === undefined) {
    throw new ConfigError('POD_IP', rawIps ?? '', 'one IP address, or several separated by commas (Downward API status.podIPs)')
  }
  return Object.freeze({ name: read(env, 'POD_NAME'), namespace, uid: read(env, 'POD_UID'), ips: Object.freeze(ips) })
}

function readKube(env: Env): KubeConfig | undefined {
  const tokenFile = read(env, 'DRAIN_KUBE_TOKEN_FILE') ?? DEFAULTS.tokenFile
  const caFile = read(env, 'DRAIN_KUBE_CA_FILE') ?? DEFAULTS.caFile
  const explicit = read(env, 'DRAIN_KUBE_API_URL')
  if (explicit !== undefined) {
    const url = parseHttpUrl('DRAIN_KUBE_API_URL', explicit)
    // The bearer token must never cross a network in clear text: plain http only to this pod (kubectl proxy).
    if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
      throw new ConfigError(
        'DRAIN_KUBE_API_URL',
        explicit,
        'an https:// URL (plain http only to a loopback address such as http://127.0.0.1:8001)',
      )
    }
    return Object.freeze({ apiUrl: url.href.replace(/\/+$/, ''), tokenFile, caFile })
  }
  const host = read(env, 'KUBERNETES_SERVICE_HOST')
  const port = read(env, 'KUBERNETES_SERVICE_PORT')
  if (host === undefined || port === undefined) return undefined
  readPort(env, 'KUBERNETES_SERVICE_PORT', 443)
  // kubelet writes the raw ClusterIP: an IPv6 one has no brackets, and must get them in a URL.
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  const url = parseHttpUrl('KUBERNETES_SERVICE_HOST', `https://${bracketed}:${port}`)
  return Object.freeze({ apiUrl: url.href.replace(/\/+$/, ''), tokenFile, caFile })
}

function isLoopback(hostname: string): boolean {
  const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname
  // canonicalIp writes an IPv4-mapped address (::ffff:127.0.0.1) dotted, so it is caught by the prefix too.
  const ip = canonicalIp(host)
  return host === 'localhost' || ip === '::1' || ip?.startsWith('127.') === true
}

function readHookToken(env: Env): HookTokenConfig | undefined {
  const value = env.DRAIN_HOOK_TOKEN
  const file = read(env, 'DRAIN_HOOK_TOKEN_FILE')
  if (value !== undefined && value !== '' && file !== undefined) {
    throw new ConfigError('DRAIN_HOOK_TOKEN_FILE', file, 'either DRAIN_HOOK_TOKEN or DRAIN_HOOK_TOKEN_FILE, not both')
  }
  if (file !== undefined) return Object.freeze({ file })
  if (value === undefined || value === '') return undefined
  // A header value cannot hold control characters; a token with them could never be sent by kubelet.
  if (!/^[\x21-\x7e]{8,}$/.test(value)) {
    throw new ConfigError('DRAIN_HOOK_TOKEN', '<redacted>', 'at least 8 visible ASCII characters, no spaces')
  }
  return Object.freeze({ value })
}
