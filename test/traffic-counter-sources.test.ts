/**
 * The HTTP counter sources of the traffic gate (Envoy's stats, the app's request counter), driven by an injected
 * fetch on the fake clock: a rise is traffic, a flat counter is not, and everything that leaves the sample unable
 * to tell (no answer, an error status, an oversized or malformed body, a counter that went down) is traffic.
 */
import test from 'ava'
import type { Fetch } from '../src/transport.ts'
import { MAX_COUNTER_BODY_BYTES, appMetricSource, envoyStatsSource } from '../src/traffic/counter-source.ts'
import { ENVOY_STATS_FILTER, sumInboundCounters } from '../src/traffic/envoy-stats.ts'
import { parseSelector } from '../src/traffic/prom-text.ts'
import { FakeClock } from './helpers/fake-clock.ts'

type Answer =
  | { kind: 'body'; body: string; status?: number }
  | { kind: 'refused' }
  | { kind: 'hang' }
  | { kind: 'stall-body' }
  | { kind: 'endless-body' }
  | { kind: 'declared-too-long'; bytes: number }

/** A fetch whose next answers tests set; records the URLs and Accept headers asked for. */
function peer(first: Answer) {
  let answer = first
  const calls: Array<{ url: string; accept: string | null }> = []
  const fetch: Fetch = async (url, init) => {
    calls.push({ url, accept: new Headers(init?.headers).get('accept') })
    const signal = init?.signal ?? undefined
    const never = () =>
      new Promise<never>((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true }))
    switch (answer.kind) {
      case 'body':
        return new Response(answer.body, { status: answer.status ?? 200 })
      case 'refused':
        throw new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:15000') })
      case 'hang':
        return never()
      case 'stall-body':
        // Headers arrive, the body never does (and ignores the signal, like a stuck stream).
        return new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode('{"stats":[')) }))
      case 'endless-body': {
        const chunk = new Uint8Array(64 * 1024).fill(32)
        let sent = 0
        const body = new ReadableStream({
          pull: (c) => {
            sent += chunk.byteLength
            c.enqueue(chunk)
          },
        })
        return Object.assign(new Response(body), { sentBytes: () => sent })
      }
      case 'declared-too-long': {
        // The length is declared up front; the body counts what anyone pulls from it.
        let pulled = 0
        const body = new ReadableStream({
          pull: (c) => {
            pulled++
            c.enqueue(new Uint8Array(1024).fill(32))
          },
        })
        return Object.assign(new Response(body, { headers: { 'content-length': String(answer.bytes) } }), { pulls: () => pulled })
      }
    }
  }
  return { fetch, calls, set: (next: Answer) => (answer = next) }
}

const envoyBody = (stats: Record<string, number>) =>
  JSON.stringify({ stats: Object.entries(stats).map(([name, value]) => ({ name, value })) })
const inbound = (rq: number, cx = 1) =>
  envoyBody({
    'http.ingress_http.downstream_rq_total': rq,
    'listener.0.0.0.0_10000.downstream_cx_total': cx,
    'http.admin.downstream_rq_total': 999,
  })

function envoy(first: Answer, timeoutMs = 2_000) {
  const clock = new FakeClock()
  const p = peer(first)
  const sample = envoyStatsSource('http://127.0.0.1:15000/', { fetch: p.fetch, clock, timeoutMs })()
  return { clock, peer: p, sample }
}

test('Envoy: the first reading is the baseline, a rise is traffic, a flat counter is not', async (t) => {
  const { peer: p, sample } = envoy({ kind: 'body', body: inbound(10) })
  t.like(await sample(), { traffic: false, source: 'http://127.0.0.1:15000/stats' })
  p.set({ kind: 'body', body: inbound(11) })
  t.like(await sample(), { traffic: true, problem: undefined })
  t.like(await sample(), { traffic: false })
  p.set({ kind: 'body', body: inbound(11, 2) }) // a new connection without a request yet
  t.like(await sample(), { traffic: true })
  t.is(p.calls[0]!.url, `http://127.0.0.1:15000/stats?format=json&filter=${encodeURIComponent(ENVOY_STATS_FILTER)}`)
  t.is(p.calls[0]!.accept, 'application/json')
})

test('Envoy: a counter that went down (a restart) is traffic with a problem, and the new value the baseline', async (t) => {
  const { peer: p, sample } = envoy({ kind: 'body', body: inbound(50) })
  await sample()
  p.set({ kind: 'body', body: inbound(3) })
  const dropped = await sample()
  t.true(dropped.traffic)
  t.regex(dropped.problem!, /counter went down from 51 to 4/)
  t.like(await sample(), { traffic: false, problem: undefined })
})

test('Envoy: refused, an error status or a body that is not the stats JSON is traffic; so is the first good reading after', async (t) => {
  const { peer: p, sample } = envoy({ kind: 'body', body: inbound(5) })
  await sample()
  for (const [answer, problem] of [
    [{ kind: 'refused' }, /ECONNREFUSED/],
    [{ kind: 'body', body: 'no', status: 503 }, /status 503/],
    [{ kind: 'body', body: '<html>' }, /not JSON/],
    [{ kind: 'body', body: '{"stats":{}}' }, /no "stats" array/],
    [{ kind: 'body', body: envoyBody({ 'http.x.downstream_rq_total': 1 }).replace('1}', '"1"}') }, /no numeric value/],
  ] as const) {
    p.set(answer)
    const result = await sample()
    t.true(result.traffic, JSON.stringify(answer))
    t.regex(result.problem!, problem)
  }
  p.set({ kind: 'body', body: inbound(5) })
  t.like(await sample(), { traffic: true, problem: undefined }, 'the gap after a failure cannot be told: traffic')
  t.like(await sample(), { traffic: false })
})

test('Envoy: no answer within the side-call timeout is traffic, and the sample ends at the timeout', async (t) => {
  const { clock, peer: p, sample } = envoy({ kind: 'body', body: inbound(5) }, 2_000)
  await sample()
  for (const answer of [{ kind: 'hang' }, { kind: 'stall-body' }] as const) {
    p.set(answer)
    let done: Awaited<ReturnType<typeof sample>> | undefined
    void sample().then((r) => (done = r))
    await clock.advance(1_999)
    t.is(done, undefined, `${answer.kind}: still waiting before the timeout`)
    await clock.advance(1)
    t.like(done, { traffic: true }, answer.kind)
    t.regex(done!.problem!, /no whole answer within 2000ms/)
  }
})

test('an answer over the cap is abandoned once the cap is passed, counting decoded bytes as they arrive', async (t) => {
  const clock = new FakeClock()
  const p = peer({ kind: 'endless-body' })
  let response: (Response & { sentBytes?: () => number }) | undefined
  const fetch: Fetch = async (url, init) => (response = await p.fetch(url, init))
  const sample = envoyStatsSource('http://127.0.0.1:15000', { fetch, clock, timeoutMs: 2_000 })()
  const result = await sample()
  t.true(result.traffic)
  t.regex(result.problem!, new RegExp(`exceeds ${MAX_COUNTER_BODY_BYTES} bytes`))
  t.true(response!.sentBytes!() <= MAX_COUNTER_BODY_BYTES + 3 * 64 * 1024, `read ${response!.sentBytes!()} bytes of an endless body`)
})

test('a declared length over the cap is refused without reading the body', async (t) => {
  const clock = new FakeClock()
  const p = peer({ kind: 'declared-too-long', bytes: MAX_COUNTER_BODY_BYTES + 1 })
  let response: (Response & { pulls?: () => number }) | undefined
  const fetch: Fetch = async (url, init) => (response = await p.fetch(url, init))
  const result = await envoyStatsSource('http://127.0.0.1:15000', { fetch, clock, timeoutMs: 2_000 })()()
  t.true(result.traffic)
  t.regex(result.problem!, new RegExp(`exceeds ${MAX_COUNTER_BODY_BYTES} bytes`))
  // A ReadableStream pulls once on its own to fill its queue; reading the body would pull again and again.
  t.true(response!.pulls!() <= 1, `pulled ${response!.pulls!()} chunks`)
})

test("Envoy's counters: the admin listener and HCM and the per-worker copies are left out", (t) => {
  const text = envoyBody({
    'http.ingress_http.downstream_rq_total': 7,
    'http.admin.downstream_rq_total': 1000,
    'listener.0.0.0.0_10000.downstream_cx_total': 3,
    'listener.0.0.0.0_10000.worker_0.downstream_cx_total': 2,
    'listener.0.0.0.0_10000.worker_1.downstream_cx_total': 1,
    'listener.0.0.0.0_10000.main_thread.downstream_cx_total': 0,
    'listener.admin.downstream_cx_total': 500,
    'listener.admin.main_thread.downstream_cx_total': 500,
    'cluster.app.upstream_rq_total': 40,
  })
  t.deepEqual(sumInboundCounters(text), {
    sum: 10,
    counters: ['http.ingress_http.downstream_rq_total', 'listener.0.0.0.0_10000.downstream_cx_total'],
  })
})

test("Envoy's counters in an Istio sidecar: only the inbound listener (15006) and the inbound_ HCMs count", (t) => {
  // Names as an Istio sidecar has them: virtualOutbound 15001, virtualInbound 15006, health 15021 (HCM "agent"),
  // Prometheus 15090 (HCM "stats"), outbound HCMs and listeners per service port.
  const text = JSON.stringify({
    stats: [
      { name: 'http.admin.downstream_rq_total', value: 90 },
      { name: 'http.agent.downstream_rq_total', value: 80 },
      { name: 'http.inbound_0.0.0.0_8080;.downstream_rq_total', value: 12 },
      { name: 'http.outbound_0.0.0.0_80;.downstream_rq_total', value: 70 },
      { name: 'http.stats.downstream_rq_total', value: 60 },
      { name: 'listener.0.0.0.0_15001.downstream_cx_total', value: 50 },
      { name: 'listener.0.0.0.0_15006.downstream_cx_total', value: 4 },
      { name: 'listener.[__]_15006.downstream_cx_total', value: 1 },
      { name: 'listener.0.0.0.0_15021.downstream_cx_total', value: 40 },
      { name: 'listener.0.0.0.0_15090.downstream_cx_total', value: 30 },
      { name: 'listener.0.0.0.0_80.downstream_cx_total', value: 20 },
      { histograms: { supported_quantiles: [0, 50, 100], computed_quantiles: [] } },
    ],
  })
  t.deepEqual(sumInboundCounters(text), {
    sum: 17,
    counters: [
      'http.inbound_0.0.0.0_8080;.downstream_rq_total',
      'listener.0.0.0.0_15006.downstream_cx_total',
      'listener.[__]_15006.downstream_cx_total',
    ],
  })
})

test('Envoy without any of the counters: a reading of 0 with one warning, not a problem', async (t) => {
  const { sample } = envoy({ kind: 'body', body: envoyBody({ 'http.admin.downstream_rq_total': 3 }) })
  const first = await sample()
  t.like(first, { traffic: false, problem: undefined })
  t.regex(first.warning!, /proxyStatsMatcher/)
  t.is((await sample()).warning, undefined, 'warned once')
})

const exposition = (api: number, ready: number) =>
  `# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\nhttp_requests_total{path="/api",code="200"} ${api}\nhttp_requests_total{path="/ready",code="200"} ${ready}\n`

function appMetric(first: Answer) {
  const clock = new FakeClock()
  const p = peer(first)
  const selector = parseSelector('http_requests_total{path!="/ready"}')
  const sample = appMetricSource('http://127.0.0.1:8080/metrics', selector, { fetch: p.fetch, clock, timeoutMs: 2_000 })()
  return { clock, peer: p, sample }
}

test("the app's counter: only the selected series count, summed; the classic text format is asked for", async (t) => {
  const { peer: p, sample } = appMetric({ kind: 'body', body: exposition(10, 500) })
  t.like(await sample(), { traffic: false, source: 'http://127.0.0.1:8080/metrics http_requests_total{path!="/ready"}' })
  p.set({ kind: 'body', body: exposition(10, 520) }) // readiness probes only
  t.like(await sample(), { traffic: false })
  p.set({ kind: 'body', body: exposition(11, 520) })
  t.like(await sample(), { traffic: true })
  p.set({ kind: 'body', body: `${exposition(11, 520)}http_requests_total{path="/new",code="200"} 1\n` }) // a new series
  t.like(await sample(), { traffic: true })
  p.set({ kind: 'body', body: exposition(0, 1) }) // the app restarted
  t.regex((await sample()).problem!, /went down from 12 to 0/)
  p.set({ kind: 'body', body: 'http_requests_total{path="/api"} one\n' })
  t.regex((await sample()).problem!, /line 1 is not a sample/)
  t.is(p.calls[0]!.accept, 'text/plain;version=0.0.4')
  t.is(p.calls[0]!.url, 'http://127.0.0.1:8080/metrics')
})

test("the app's counter: a selector that matches nothing is a reading of 0 with one warning", async (t) => {
  const { peer: p, sample } = appMetric({ kind: 'body', body: 'process_cpu_seconds_total 3\n' })
  const first = await sample()
  t.like(first, { traffic: false })
  t.regex(first.warning!, /matched no series/)
  p.set({ kind: 'body', body: exposition(1, 0) })
  t.like(await sample(), { traffic: true }, 'the first series to appear is a rise from 0')
})
