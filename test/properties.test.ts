/**
 * Property-based tests (fast-check) for every parser that reads outside input: durations, URLs and the whole
 * configuration, POD_IP lists, the label selector the client builds (checked against the fake API server's
 * parser), and the watch stream's line splitter and event decoder (any chunking yields the same events).
 */
import { isIPv4, isIPv6 } from 'node:net'
import test from 'ava'
import fc from 'fast-check'
import { systemClock } from '../src/clock.ts'
import { type Env, parseConfig } from '../src/config.ts'
import { parseDuration } from '../src/duration.ts'
import { ConfigError } from '../src/errors.ts'
import { canonicalIp, parseIpList } from '../src/ip.ts'
import type { KubeClient } from '../src/kube/client.ts'
import { waitForEndpointRemoval } from '../src/kube/endpoint-wait.ts'
import { KubeLimitError } from '../src/kube/limits.ts'
import { decodeWatchEvent, decodeWatchStream, splitLines, WatchDecodeError } from '../src/kube/watch-stream.ts'
import type { Decoded } from '../src/kube/schema.ts'
import type { EndpointSlice, SliceEvent } from '../src/kube/types.ts'
import { silentLogger } from '../src/log.ts'
import { endpointSlice, READY } from '../sim/fakes/fixtures.ts'
import { parseLabelSelector } from '../sim/fakes/label-selector.ts'

const RUNS = { numRuns: 300 }

// ---- durations ----

test('durations: h/m/s/ms compositions parse to their sum, bare numbers are seconds', (t) => {
  const part = fc.integer({ min: 0, max: 500 })
  fc.assert(
    fc.property(fc.option(part), fc.option(part), fc.option(part), fc.option(part), (h, m, s, ms) => {
      fc.pre(h !== null || m !== null || s !== null || ms !== null)
      const text = `${h === null ? '' : `${h}h`}${m === null ? '' : `${m}m`}${s === null ? '' : `${s}s`}${ms === null ? '' : `${ms}ms`}`
      return parseDuration(`  ${text} `) === (h ?? 0) * 3_600_000 + (m ?? 0) * 60_000 + (s ?? 0) * 1_000 + (ms ?? 0)
    }),
    RUNS,
  )
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1_000_000 }), (n) => parseDuration(String(n)) === n * 1_000),
    RUNS,
  )
  t.pass()
})

test('durations: any string gives undefined or a finite non-negative integer, and never throws', (t) => {
  const alphabet = fc.constantFrom(...'0123456789.hms -+eE_,'.split(''))
  const text = fc.oneof(fc.string(), fc.string({ unit: alphabet, maxLength: 12 }))
  fc.assert(
    fc.property(text, (s) => {
      const ms = parseDuration(s)
      return ms === undefined || (Number.isSafeInteger(ms) && ms >= 0)
    }),
    { numRuns: 2_000 },
  )
  t.pass()
})

// ---- URLs and the whole configuration ----

const KNOWN = [
  'DRAIN_PORT',
  'DRAIN_HOST',
  'DRAIN_TIMEOUT',
  'DRAIN_SETTLE',
  'DRAIN_POLL_INTERVAL',
  'DRAIN_ENDPOINT_MODE',
  'DRAIN_APP_SHUTDOWN_URL',
  'DRAIN_READINESS_UPSTREAM',
  'DRAIN_ENVOY_ADMIN_URL',
  'DRAIN_KUBE_API_URL',
  'DRAIN_KUBE_TOKEN_FILE',
  'DRAIN_KUBE_CA_FILE',
  'KUBERNETES_SERVICE_HOST',
  'KUBERNETES_SERVICE_PORT',
  'POD_NAME',
  'POD_NAMESPACE',
  'POD_UID',
  'POD_IP',
  'DRAIN_HOOK_TOKEN',
  'DRAIN_HOOK_TOKEN_FILE',
  'DRAIN_QUIET_PERIOD',
  'DRAIN_SETTLE_MIN',
  'DRAIN_APP_PORTS',
  'HOST_IP',
  'DRAIN_APP_RESERVE',
  'DRAIN_TRAFFIC_COUNTER',
  'DRAIN_TRAFFIC_METRIC_URL',
  'DRAIN_TRAFFIC_METRIC',
]

/** Values that are sometimes valid for some variable, and sometimes hostile. */
const value = fc.oneof(
  fc.string(),
  fc.constantFrom(
    '',
    ' ',
    '5s',
    '500ms',
    '0',
    '1m30s',
    'watch',
    'poll',
    '8099',
    '70000',
    'shop',
    'Shop',
    '10.0.0.1',
    'fd00::1,10.0.0.1',
    '::1',
    'not-an-ip',
    'http://127.0.0.1:9901',
    'https://user:pw@x/',
    'ftp://x/',
    'http://[::1]:8080/shutdown',
    'a-long-enough-token',
    'http_requests_total{path!="/ready"}',
    'x{a=~"("}',
    '{__name__=~"a.*"}',
  ),
  fc.webUrl(),
  fc.ipV4(),
  fc.ipV6(),
)
const envArb = fc.dictionary(fc.constantFrom(...KNOWN), value, { maxKeys: 8 })

test('configuration: any environment either parses to a config that keeps the invariants, or throws a ConfigError naming a known variable', (t) => {
  fc.assert(
    fc.property(envArb, (env: Env) => {
      let config
      try {
        config = parseConfig(env)
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error
        if (!KNOWN.includes(error.variable)) throw new Error(`unknown variable ${error.variable}`)
        const token = env.DRAIN_HOOK_TOKEN
        if (error.variable === 'DRAIN_HOOK_TOKEN' && token && token.trim().length >= 4 && error.message.includes(token))
          throw new Error('the hook token leaked into the error')
        return true
      }
      const urls = [config.appShutdownUrl, config.readinessUpstream, config.envoyAdminUrl, config.kube?.apiUrl].filter(
        (u) => u !== undefined,
      )
      return (
        Object.isFrozen(config) &&
        config.settleMs < config.timeoutMs &&
        config.timeoutMs >= 1 &&
        config.port >= 1 &&
        config.port <= 65_535 &&
        config.pollIntervalMs >= 50 &&
        (config.endpointMode === 'watch' || config.endpointMode === 'poll') &&
        config.pod.ips.every((ip) => canonicalIp(ip) === ip) &&
        urls.every((u) => {
          const url = new URL(u)
          return (
            (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === '' && url.hostname !== ''
          )
        }) &&
        (config.kube === undefined || (!config.kube.apiUrl.endsWith('/') && config.pod.namespace !== undefined))
      )
    }),
    { numRuns: 3_000 },
  )
  t.pass()
})

test('configuration: every http(s) URL without credentials is accepted as a peer URL, in its normalized form', (t) => {
  fc.assert(
    fc.property(fc.webUrl({ validSchemes: ['http', 'https'], withQueryParameters: true, withFragments: false }), (raw) => {
      const url = new URL(raw)
      fc.pre(url.username === '' && url.password === '' && url.hostname !== '')
      return parseConfig({ DRAIN_ENVOY_ADMIN_URL: raw }).envoyAdminUrl === url.href
    }),
    RUNS,
  )
  fc.assert(
    fc.property(fc.webUrl(), fc.constantFrom('u:p@', 'user@'), (raw, creds) => {
      const withCreds = raw.replace('://', `://${creds}`)
      try {
        parseConfig({ DRAIN_APP_SHUTDOWN_URL: withCreds })
        return false
      } catch (error) {
        return error instanceof ConfigError && error.variable === 'DRAIN_APP_SHUTDOWN_URL'
      }
    }),
    RUNS,
  )
  t.pass()
})

// ---- POD_IP lists ----

/** 16 bytes of an IPv6 address, or 4 of an IPv4 one: the identity canonicalization must keep. */
function bytesOf(ip: string): number[] {
  if (isIPv4(ip)) return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, ...ip.split('.').map(Number)]
  let text = ip
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4) {
    const [a, b, c, d] = v4[1]!.split('.').map(Number) as [number, number, number, number]
    text = text.slice(0, -v4[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined]
  const h = head === '' ? [] : head.split(':')
  const tl = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl]
  return groups.flatMap((g) => {
    const n = Number.parseInt(g, 16)
    return [n >> 8, n & 255]
  })
}

test('POD_IP: canonicalization keeps the address, is idempotent, and IPv4 (and IPv4-mapped IPv6) come out dotted', (t) => {
  fc.assert(
    fc.property(fc.ipV4(), (ip) => canonicalIp(ip) === ip && canonicalIp(`::ffff:${ip}`) === ip),
    RUNS,
  )
  fc.assert(
    fc.property(fc.ipV6(), (ip) => {
      const canonical = canonicalIp(ip)
      if (canonical === undefined) return false
      return (
        canonicalIp(canonical) === canonical &&
        canonicalIp(ip.toUpperCase()) === canonical &&
        (isIPv4(canonical) || (isIPv6(canonical) && canonical === canonical.toLowerCase())) &&
        JSON.stringify(bytesOf(canonical)) === JSON.stringify(bytesOf(ip.toLowerCase()))
      )
    }),
    { numRuns: 1_000 },
  )
  t.pass()
})

test('POD_IP lists: any spacing and empty entries give the canonical addresses once each, in order; one bad entry rejects all', (t) => {
  const spacing = fc.constantFrom('', ' ', '  ', '\t')
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { minLength: 1, maxLength: 5 }), spacing, fc.boolean(), (ips, sp, extraComma) => {
      const text = ips.map((ip) => `${sp}${ip}${sp}`).join(',') + (extraComma ? ',' : '')
      const expected = [...new Set(ips.map((ip) => canonicalIp(ip)!))]
      return JSON.stringify(parseIpList(text)) === JSON.stringify(expected)
    }),
    RUNS,
  )
  fc.assert(
    fc.property(
      fc.array(fc.ipV4(), { maxLength: 3 }),
      fc.string().filter((s) => !s.includes(',') && s.trim() !== '' && canonicalIp(s) === undefined),
      (ips, bad) => parseIpList([...ips, bad].join(',')) === undefined,
    ),
    RUNS,
  )
  t.pass()
})

// ---- label selectors: what the client builds, as the API server (the fake's parser) reads it ----

const serviceName = fc.stringMatching(/^[a-z]([-a-z0-9]{0,20}[a-z0-9])?$/)

/** The selector the endpoint wait sends with its WATCH, when the pod is in these Services. */
async function watchSelectorFor(services: string[]): Promise<string | undefined> {
  const controller = new AbortController()
  let selector: string | undefined
  const kube: KubeClient = {
    async listEndpointSlices<T>({ select }: { select?: (item: Decoded<EndpointSlice>) => T | undefined }) {
      // Two slices per Service (IPv4 and IPv6, say): with more than one slice routing to the pod, the watch
      // selects by Service label rather than by one slice's name.
      const slices: EndpointSlice[] = services.flatMap((service, i) =>
        ['a', 'b'].map((family) =>
          endpointSlice({ name: `${service}-s${i}${family}`, service, endpoints: [{ ip: '10.0.0.1', podName: 'me', ...READY }] }),
        ),
      )
      const items = slices.map((value) => select!({ ok: true, value })).filter((item) => item !== undefined)
      return { resourceVersion: '5', items }
    },
    // eslint-disable-next-line require-yield
    async *watchEndpointSlices(options): AsyncGenerator<SliceEvent> {
      selector = options.labelSelector
      controller.abort(new Error('seen'))
      throw new Error('seen')
    },
  }
  await waitForEndpointRemoval(
    {
      kube,
      clock: systemClock,
      log: silentLogger,
      pod: { name: 'me', namespace: 'default', uid: undefined, ips: [] },
      mode: 'watch',
      pollIntervalMs: 100,
    },
    controller.signal,
  ).catch(() => {})
  return selector
}

test('label selector: with several slices routing to the pod, the WATCH selector matches exactly the slices of its Services', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.uniqueArray(serviceName, { minLength: 1, maxLength: 6 }),
      fc.array(serviceName, { maxLength: 6 }),
      async (services, others) => {
        const selector = await watchSelectorFor(services)
        if (selector === undefined) return false
        const matches = parseLabelSelector(selector)
        return (
          services.every((s) => matches({ 'kubernetes.io/service-name': s, other: 'x' })) &&
          others.filter((o) => !services.includes(o)).every((o) => !matches({ 'kubernetes.io/service-name': o })) &&
          !matches({}) &&
          !matches({ 'service-name': services[0]! })
        )
      },
    ),
    { numRuns: 100 },
  )
  t.pass()
})

test('label selector (fake server parser): equality, inequality, set and existence requirements mean what they say', (t) => {
  const key = fc.stringMatching(/^[a-z]([a-z0-9./-]{0,15}[a-z0-9])?$/)
  const val = fc.stringMatching(/^[a-z0-9]([a-z0-9.-]{0,10}[a-z0-9])?$/)
  fc.assert(
    fc.property(
      key,
      val,
      fc.dictionary(key, val, { maxKeys: 4 }),
      (k, v, labels) =>
        parseLabelSelector(`${k}=${v}`)(labels) === (labels[k] === v) &&
        parseLabelSelector(`${k}!=${v}`)(labels) === (labels[k] !== v) &&
        parseLabelSelector(`${k} in (${v},zz)`)(labels) === (labels[k] === v || labels[k] === 'zz') &&
        parseLabelSelector(`${k} notin (${v})`)(labels) === (labels[k] !== v) &&
        parseLabelSelector(k)(labels) === k in labels &&
        parseLabelSelector(`!${k}`)(labels) === !(k in labels) &&
        parseLabelSelector(`${k}=${v},${k}`)(labels) === (labels[k] === v),
    ),
    RUNS,
  )
  t.pass()
})

// ---- watch stream: splitter and decoder ----

const json = fc.jsonValue({ maxDepth: 3 })
const eventArb = fc.record({
  type: fc.constantFrom('ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR'),
  object: fc.record({ metadata: fc.record({ name: fc.string({ unit: 'grapheme' }), resourceVersion: fc.nat().map(String) }), extra: json }),
})

async function* chunksOf(bytes: Uint8Array, cuts: number[]) {
  let from = 0
  for (const cut of [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)) {
    yield bytes.subarray(from, cut)
    from = cut
  }
  yield bytes.subarray(from)
}

test('watch stream: any chunking of a byte stream (multi-byte characters included) yields the same events', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(eventArb, { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      fc.boolean(),
      async (events, cuts, trailingNewline) => {
        const text = events.map((e) => JSON.stringify(e)).join('\n') + (trailingNewline ? '\n' : '')
        const bytes = new TextEncoder().encode(text)
        const decoded = await Array.fromAsync(decodeWatchStream(chunksOf(bytes, cuts)))
        return JSON.stringify(decoded) === JSON.stringify(events.map((e) => JSON.parse(JSON.stringify(e)) as unknown))
      },
    ),
    { numRuns: 500 },
  )
  t.pass()
})

test('watch stream: the line splitter yields the trimmed non-empty lines whatever the chunking', async (t) => {
  const line = fc.string({ unit: fc.constantFrom('a', 'é', '€', '😀', ' ', '\r', '{', '"'), maxLength: 12 })
  await fc.assert(
    fc.asyncProperty(fc.array(line, { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 30 }), async (lines, cuts) => {
      const text = lines.join('\n')
      const out = await Array.fromAsync(splitLines(chunksOf(new TextEncoder().encode(text), cuts)))
      return JSON.stringify(out) === JSON.stringify(lines.map((l) => l.trim()).filter((l) => l !== ''))
    }),
    { numRuns: 500 },
  )
  t.pass()
})

test('watch stream: the splitter refuses a line longer than its cap instead of growing without bound', async (t) => {
  const chunk = new TextEncoder().encode('x'.repeat(1_000))
  async function* endless() {
    for (let i = 0; i < 100; i++) yield chunk
  }
  await t.throwsAsync(Array.fromAsync(splitLines(endless(), 10_000)), { instanceOf: KubeLimitError })
})

test('watch stream: the event decoder returns a typed event or throws WatchDecodeError, never anything else', (t) => {
  const line = fc.oneof(
    fc.string(),
    json.map((v) => JSON.stringify(v)),
    eventArb.map((e) => JSON.stringify(e)),
    fc.record({ type: fc.string(), object: json }).map((e) => JSON.stringify(e)),
  )
  fc.assert(
    fc.property(line, (text) => {
      try {
        const event = decodeWatchEvent(text)
        return (
          ['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR'].includes(event.type) &&
          typeof event.object === 'object' &&
          event.object !== null
        )
      } catch (error) {
        return error instanceof WatchDecodeError
      }
    }),
    { numRuns: 2_000 },
  )
  t.pass()
})
