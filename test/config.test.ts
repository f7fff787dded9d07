import test from 'ava'
import { DEFAULTS, describeConfig, parseConfig } from '../src/config.ts'
import { ConfigError } from '../src/errors.ts'

const inCluster = {
  KUBERNETES_SERVICE_HOST: '10.96.0.1',
  KUBERNETES_SERVICE_PORT: '443',
  POD_NAMESPACE: 'shop',
  POD_NAME: 'web-1',
  POD_UID: 'u-1',
  POD_IP: '10.1.0.5',
}

test('defaults match the documented contract', (t) => {
  const config = parseConfig(inCluster)
  t.is(config.port, 8099)
  t.is(config.host, undefined)
  t.is(config.endpointMode, 'watch')
  t.is(config.pollIntervalMs, 1_000)
  t.is(config.settleMs, 5_000)
  t.is(config.timeoutMs, 20_000)
  t.is(config.appShutdownUrl, undefined)
  t.is(config.envoyAdminUrl, undefined)
  t.is(config.hookToken, undefined)
  t.deepEqual(config.kube, { apiUrl: 'https://10.96.0.1', tokenFile: DEFAULTS.tokenFile, caFile: DEFAULTS.caFile })
})

test('the configuration object is frozen', (t) => {
  const config = parseConfig(inCluster)
  t.true(Object.isFrozen(config))
  t.true(Object.isFrozen(config.pod))
  t.true(Object.isFrozen(config.pod.ips))
})

test('an IPv6 KUBERNETES_SERVICE_HOST is bracketed in the API URL', (t) => {
  const config = parseConfig({ ...inCluster, KUBERNETES_SERVICE_HOST: 'fd00:10:96::1', KUBERNETES_SERVICE_PORT: '6443' })
  t.is(config.kube?.apiUrl, 'https://[fd00:10:96::1]:6443')
})

test('DRAIN_KUBE_API_URL overrides the in-cluster address and loses its trailing slash', (t) => {
  const config = parseConfig({ ...inCluster, DRAIN_KUBE_API_URL: 'https://kube.example:6443/' })
  t.is(config.kube?.apiUrl, 'https://kube.example:6443')
})

test('plain http to the API server is accepted only on loopback (kubectl proxy), where the token stays in the pod', (t) => {
  t.is(parseConfig({ ...inCluster, DRAIN_KUBE_API_URL: 'http://127.0.0.1:8001' }).kube?.apiUrl, 'http://127.0.0.1:8001')
  t.is(parseConfig({ ...inCluster, DRAIN_KUBE_API_URL: 'http://[::1]:8001' }).kube?.apiUrl, 'http://[::1]:8001')
  t.is(parseConfig({ ...inCluster, DRAIN_KUBE_API_URL: 'http://localhost:8001' }).kube?.apiUrl, 'http://localhost:8001')
  t.is(
    parseConfig({ ...inCluster, DRAIN_KUBE_API_URL: 'http://[::ffff:127.0.0.1]:8001' }).kube?.apiUrl,
    'http://[::ffff:7f00:1]:8001',
    'IPv4-mapped loopback',
  )
  t.throws(() => parseConfig({ ...inCluster, DRAIN_KUBE_API_URL: 'http://[::ffff:10.0.0.1]:8001' }), {
    message: /plain http only to a loopback address/,
  })
})

test('the final scrape wait defaults to 15 s and 0 turns it off', (t) => {
  t.is(parseConfig(inCluster).finalScrapeWaitMs, 15_000)
  t.is(parseConfig({ ...inCluster, DRAIN_FINAL_SCRAPE_WAIT: '0' }).finalScrapeWaitMs, 0)
})

test('DRAIN_HEADERS_TIMEOUT defaults to 10 s and accepts 100ms to 1m', (t) => {
  t.is(parseConfig(inCluster).headersTimeoutMs, 10_000)
  t.is(parseConfig({ ...inCluster, DRAIN_HEADERS_TIMEOUT: '500ms' }).headersTimeoutMs, 500)
  for (const bad of ['50ms', '2m', 'soon']) {
    t.throws(() => parseConfig({ ...inCluster, DRAIN_HEADERS_TIMEOUT: bad }), {
      message: new RegExp(`^DRAIN_HEADERS_TIMEOUT="${bad}" is not valid: expected .*from 100ms up to (1m|24h)`),
    })
  }
})

test('no API server configured at all leaves the endpoint wait off', (t) => {
  const config = parseConfig({ POD_NAME: 'web-1' })
  t.is(config.kube, undefined)
})

test('durations accept every documented form', (t) => {
  const config = parseConfig({ ...inCluster, DRAIN_SETTLE: '500ms', DRAIN_TIMEOUT: '1m30s', DRAIN_POLL_INTERVAL: '2' })
  t.is(config.settleMs, 500)
  t.is(config.timeoutMs, 90_000)
  t.is(config.pollIntervalMs, 2_000)
})

test('POD_IP on a dual-stack pod holds both addresses, canonicalized', (t) => {
  t.deepEqual(parseConfig({ ...inCluster, POD_IP: '10.1.0.5,fd00:0:0::5' }).pod.ips, ['10.1.0.5', 'fd00::5'])
})

test('the logged configuration never contains the hook token', (t) => {
  const config = parseConfig({ ...inCluster, DRAIN_HOOK_TOKEN: 's3cret-hook-token' })
  t.false(JSON.stringify(describeConfig(config)).includes('s3cret-hook-token'))
})

const rejected: Array<[string, Record<string, string>, RegExp]> = [
  ['DRAIN_TIMEOUT', { DRAIN_TIMEOUT: 'abc' }, /DRAIN_TIMEOUT="abc" is not valid: expected a duration such as 500ms/],
  ['DRAIN_SETTLE', { DRAIN_SETTLE: '5x' }, /DRAIN_SETTLE="5x"/],
  [
    'DRAIN_SETTLE',
    { DRAIN_SETTLE: '20s', DRAIN_TIMEOUT: '20s' },
    /DRAIN_SETTLE="20s" is not valid: expected a duration shorter than DRAIN_TIMEOUT \(20s\)/,
  ],
  // The other value is a default the user never set: the message says so.
  [
    'DRAIN_TIMEOUT',
    { DRAIN_TIMEOUT: '3s' },
    /DRAIN_TIMEOUT="3s" is not valid: expected a duration longer than DRAIN_SETTLE \(5s, the default;/,
  ],
  [
    'DRAIN_SETTLE',
    { DRAIN_SETTLE: '25s' },
    /DRAIN_SETTLE="25s" is not valid: expected a duration shorter than DRAIN_TIMEOUT \(20s, the default\)/,
  ],
  ['DRAIN_POLL_INTERVAL', { DRAIN_POLL_INTERVAL: '1ms' }, /DRAIN_POLL_INTERVAL="1ms".*from 50ms up to 24h/],
  ['DRAIN_TIMEOUT', { DRAIN_TIMEOUT: '25h' }, /DRAIN_TIMEOUT="25h" is not valid: expected a duration such as 500ms.*up to 24h/],
  ['DRAIN_FINAL_SCRAPE_WAIT', { DRAIN_FINAL_SCRAPE_WAIT: '90000000' }, /DRAIN_FINAL_SCRAPE_WAIT="90000000".*up to 24h/],
  ['DRAIN_PORT', { DRAIN_PORT: '70000' }, /DRAIN_PORT="70000" is not valid: expected a port number from 1 to 65535/],
  ['DRAIN_PORT', { DRAIN_PORT: '0' }, /DRAIN_PORT="0"/],
  ['DRAIN_HOST', { DRAIN_HOST: 'not a host!' }, /DRAIN_HOST="not a host!"/],
  ['DRAIN_ENDPOINT_MODE', { DRAIN_ENDPOINT_MODE: 'push' }, /DRAIN_ENDPOINT_MODE="push" is not valid: expected one of watch, poll/],
  [
    'DRAIN_APP_SHUTDOWN_URL',
    { DRAIN_APP_SHUTDOWN_URL: 'localhost:8080/shutdown' },
    /DRAIN_APP_SHUTDOWN_URL="localhost:8080\/shutdown" is not valid: expected an absolute http/,
  ],
  ['DRAIN_ENVOY_ADMIN_URL', { DRAIN_ENVOY_ADMIN_URL: 'ftp://127.0.0.1:15000' }, /DRAIN_ENVOY_ADMIN_URL="ftp:/],
  ['DRAIN_READINESS_UPSTREAM', { DRAIN_READINESS_UPSTREAM: 'http://user:pw@127.0.0.1/ready' }, /DRAIN_READINESS_UPSTREAM=/],
  ['DRAIN_KUBE_API_URL', { DRAIN_KUBE_API_URL: 'not a url' }, /DRAIN_KUBE_API_URL="not a url"/],
  [
    'DRAIN_KUBE_API_URL',
    { DRAIN_KUBE_API_URL: 'http://10.96.0.1:80' },
    /DRAIN_KUBE_API_URL="http:\/\/10.96.0.1:80" is not valid: expected an https:\/\/ URL \(plain http only to a loopback address/,
  ],
  ['DRAIN_FINAL_SCRAPE_WAIT', { DRAIN_FINAL_SCRAPE_WAIT: 'soon' }, /DRAIN_FINAL_SCRAPE_WAIT="soon"/],
  ['KUBERNETES_SERVICE_PORT', { KUBERNETES_SERVICE_PORT: 'https' }, /KUBERNETES_SERVICE_PORT="https"/],
  [
    'POD_IP',
    { POD_IP: '10.1.0.5,banana' },
    /POD_IP="10.1.0.5,banana" is not valid: expected one IP address, or several separated by commas/,
  ],
  ['POD_NAMESPACE', { POD_NAMESPACE: 'Shop_1' }, /POD_NAMESPACE="Shop_1"/],
  [
    'DRAIN_HOOK_TOKEN',
    { DRAIN_HOOK_TOKEN: 'short' },
    /DRAIN_HOOK_TOKEN="<redacted>" is not valid: expected at least 8 visible ASCII characters/,
  ],
  [
    'DRAIN_HOOK_TOKEN_FILE',
    { DRAIN_HOOK_TOKEN: 'long-enough-token', DRAIN_HOOK_TOKEN_FILE: '/etc/token' },
    /either DRAIN_HOOK_TOKEN or DRAIN_HOOK_TOKEN_FILE/,
  ],
]

for (const [variable, env, message] of rejected) {
  test(`${variable}=${JSON.stringify(Object.values(env).at(-1))} is rejected, naming ${variable}`, (t) => {
    const error = t.throws(() => parseConfig({ ...inCluster, ...env }), { instanceOf: ConfigError, message })
    t.is(error?.variable, variable)
    t.false(error?.message.includes('\n'), 'one line')
  })
}

test('an API server without POD_NAMESPACE is rejected, since the slices cannot be found', (t) => {
  const { POD_NAMESPACE: _ns, ...env } = inCluster
  t.throws(() => parseConfig(env), { instanceOf: ConfigError, message: /^POD_NAMESPACE=""/ })
})

test('an API server without any pod identity is rejected', (t) => {
  t.throws(() => parseConfig({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443', POD_NAMESPACE: 'shop' }), {
    message: /at least one of POD_UID, POD_NAME or POD_IP/,
  })
})

test('the traffic-quiet gate: DRAIN_QUIET_PERIOD 1s, DRAIN_SETTLE_MIN 0 by default; DRAIN_APP_PORTS and HOST_IP are lists', (t) => {
  const defaults = parseConfig(inCluster)
  t.like(defaults, { quietPeriodMs: 1_000, settleMinMs: 0, appPorts: undefined })
  t.deepEqual(defaults.hostIps, [])
  const set = parseConfig({
    ...inCluster,
    DRAIN_QUIET_PERIOD: '0',
    DRAIN_SETTLE_MIN: '2s',
    DRAIN_APP_PORTS: '8080, 8443,8080',
    HOST_IP: '198.18.0.1,fd00:0::1',
  })
  t.like(set, { quietPeriodMs: 0, settleMinMs: 2_000 })
  t.deepEqual(set.appPorts, [8080, 8443])
  t.deepEqual(set.hostIps, ['198.18.0.1', 'fd00::1'])
})

const rejectedGate: Array<[string, Record<string, string>, RegExp]> = [
  ['DRAIN_QUIET_PERIOD', { DRAIN_QUIET_PERIOD: 'brief' }, /DRAIN_QUIET_PERIOD="brief" is not valid: expected a duration/],
  [
    'DRAIN_SETTLE_MIN',
    { DRAIN_SETTLE_MIN: '6s', DRAIN_SETTLE: '5s' },
    /DRAIN_SETTLE_MIN="6s" is not valid: expected a duration no longer than DRAIN_SETTLE \(5s\)/,
  ],
  [
    'DRAIN_APP_PORTS',
    { DRAIN_APP_PORTS: '8080,http' },
    /DRAIN_APP_PORTS="8080,http" is not valid: expected port numbers from 1 to 65535 separated by commas/,
  ],
  ['DRAIN_APP_PORTS', { DRAIN_APP_PORTS: '0' }, /DRAIN_APP_PORTS="0"/],
  ['HOST_IP', { HOST_IP: 'node-1' }, /HOST_IP="node-1" is not valid: expected the node's IP address/],
]

for (const [variable, env, message] of rejectedGate) {
  test(`${variable}=${JSON.stringify(Object.values(env)[0])} is rejected, naming ${variable}`, (t) => {
    const error = t.throws(() => parseConfig({ ...inCluster, ...env }), { instanceOf: ConfigError, message })
    t.is(error?.variable, variable)
  })
}

test('DRAIN_TRAFFIC_METRIC_URL and DRAIN_TRAFFIC_METRIC: unset by default; set together, the selector is parsed at start-up', (t) => {
  t.is(parseConfig(inCluster).trafficMetric, undefined)
  const config = parseConfig({
    ...inCluster,
    DRAIN_TRAFFIC_METRIC_URL: 'http://127.0.0.1:8080/metrics',
    DRAIN_TRAFFIC_METRIC: 'http_requests_total{path!="/ready"}',
  })
  t.is(config.trafficMetric?.url, 'http://127.0.0.1:8080/metrics')
  t.deepEqual(
    config.trafficMetric?.selector.matchers.map((m) => [m.label, m.op, m.value]),
    [
      ['__name__', '=', 'http_requests_total'],
      ['path', '!=', '/ready'],
    ],
  )
  t.like(describeConfig(config).trafficMetric, { url: 'http://127.0.0.1:8080/metrics', selector: 'http_requests_total{path!="/ready"}' })
})

const rejectedMetric: Array<[string, Record<string, string>, RegExp]> = [
  [
    'DRAIN_TRAFFIC_METRIC',
    { DRAIN_TRAFFIC_METRIC_URL: 'http://127.0.0.1:8080/metrics' },
    /DRAIN_TRAFFIC_METRIC="" is not valid: expected a Prometheus series selector.*set together with DRAIN_TRAFFIC_METRIC_URL/,
  ],
  [
    'DRAIN_TRAFFIC_METRIC_URL',
    { DRAIN_TRAFFIC_METRIC: 'http_requests_total' },
    /DRAIN_TRAFFIC_METRIC_URL="" is not valid: expected the app's Prometheus metrics URL.*set together with DRAIN_TRAFFIC_METRIC$/,
  ],
  [
    'DRAIN_TRAFFIC_METRIC_URL',
    { DRAIN_TRAFFIC_METRIC_URL: '127.0.0.1:8080/metrics', DRAIN_TRAFFIC_METRIC: 'x' },
    /DRAIN_TRAFFIC_METRIC_URL="127.0.0.1:8080\/metrics" is not valid: expected an absolute http/,
  ],
  [
    'DRAIN_TRAFFIC_METRIC',
    { DRAIN_TRAFFIC_METRIC_URL: 'http://127.0.0.1:8080/metrics', DRAIN_TRAFFIC_METRIC: 'rate(http_requests_total[1m])' },
    /DRAIN_TRAFFIC_METRIC="rate\(http_requests_total\[1m\]\)" is not valid: expected a Prometheus series selector: a metric name with optional label matchers \(=, !=, =~, !~\).*\(unexpected text/,
  ],
  [
    'DRAIN_TRAFFIC_METRIC',
    { DRAIN_TRAFFIC_METRIC_URL: 'http://127.0.0.1:8080/metrics', DRAIN_TRAFFIC_METRIC: 'x{code=~"(5"}' },
    /not a regular expression/,
  ],
]

for (const [variable, env, message] of rejectedMetric) {
  test(`${variable} with ${JSON.stringify(env)} is rejected in one line, naming ${variable}`, (t) => {
    const error = t.throws(() => parseConfig({ ...inCluster, ...env }), { instanceOf: ConfigError, message })
    t.is(error?.variable, variable)
    t.false(error?.message.includes('\n'), 'one line')
  })
}
