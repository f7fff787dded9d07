/**
 * npm run bench:probes: does probe and scrape traffic delay a drain's release?
 *
 * Runs the bundle (dist/drain-coordinator.mjs) against the fake HTTPS Kubernetes API, holds a /prestop, removes
 * the pod's endpoint, and measures the release delay: hook answered − endpoint removed − DRAIN_SETTLE (watch
 * event delivery + settle timer lateness + the answer's trip). Baseline runs have no other traffic; loaded runs
 * fire GET /ready, /healthz and /metrics in equal parts at a target rate over keep-alive connections during the
 * whole drain. Loopback only; every loop is bounded by a count and a time limit.
 *
 * Options: --rate=3000 (req/s) --runs=5 --settle=500 (ms) --connections=16 --out=bench-results
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { median, percentile, sleep } from '../sim/common.ts'
import { startFakeKube } from '../sim/fakes/fake-kube.ts'
import { READY, TERMINATING } from '../sim/fakes/fixtures.ts'
import { podSlice } from '../sim/fakes/hostile-kube.ts'
import { BUNDLE, startSidecar } from '../sim/fakes/sidecar-process.ts'

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '3000' },
    runs: { type: 'string', default: '5' },
    settle: { type: 'string', default: '500' },
    connections: { type: 'string', default: '16' },
    out: { type: 'string', default: 'bench-results' },
  },
})
const RATE = Number(args.rate)
const RUNS = Number(args.runs)
const SETTLE_MS = Number(args.settle)
const CONNECTIONS = Number(args.connections)
/** Hard caps: no run sends more than this, or lasts longer. */
const MAX_REQUESTS_PER_RUN = 200_000
const MAX_RUN_MS = 30_000
const WARMUP_MS = 500
const HOLD_BEFORE_REMOVAL_MS = 300
const PATHS = ['/ready', '/healthz', '/metrics'] as const

if (!existsSync(BUNDLE)) {
  console.error(`no bundle at ${BUNDLE}: run npm run build first`)
  process.exit(2)
}

const NS = 'bench'
// The pod podSlice (sim/fakes/hostile-kube.ts) puts in its slice beside one other ready pod.
const me = { ip: '10.0.0.7', podName: 'web-1', uid: 'uid-web-1' }
const slice = (conditions: object) => podSlice(NS, me.ip, conditions)

type Load = { stop: () => Promise<{ sent: number; ok: number; errors: number; seconds: number; latenciesMs: number[] }> }

/** Paced load: request i is due at start + i/RATE; CONNECTIONS workers take the next due slot. */
function startLoad(url: string): Load {
  const pool = new Pool(url, { connections: CONNECTIONS, pipelining: 1, keepAliveTimeout: 10_000 })
  const startedAt = performance.now()
  let next = 0
  let stopped = false
  let ok = 0
  let errors = 0
  const latenciesMs: number[] = []
  const worker = async () => {
    while (!stopped && next < MAX_REQUESTS_PER_RUN && performance.now() - startedAt < MAX_RUN_MS) {
      const i = next++
      const due = startedAt + (i * 1_000) / RATE
      const wait = due - performance.now()
      if (wait > 1) await sleep(wait)
      const sentAt = performance.now()
      try {
        const { statusCode, body } = await pool.request({ path: PATHS[i % PATHS.length]!, method: 'GET' })
        await body.dump()
        // /ready answers 503 once the drain has started: that is its job, not an error.
        if (statusCode === 200 || statusCode === 503) ok++
        else errors++
      } catch {
        errors++
      }
      latenciesMs.push(performance.now() - sentAt)
    }
  }
  const workers = Array.from({ length: CONNECTIONS * 4 }, worker)
  return {
    async stop() {
      stopped = true
      await Promise.all(workers)
      const seconds = (performance.now() - startedAt) / 1_000
      await pool.close()
      return { sent: next, ok, errors, seconds, latenciesMs }
    },
  }
}

type RunResult = {
  releaseDelayMs: number
  settleLatenessMs: number | undefined
  load?: { rps: number; errors: number; p50: number; p99: number }
}

async function run(kube: Awaited<ReturnType<typeof startFakeKube>>, tokenFile: string, loaded: boolean): Promise<RunResult> {
  kube.upsert(slice(READY))
  const sidecar = await startSidecar({
    DRAIN_KUBE_API_URL: kube.url,
    DRAIN_KUBE_CA_FILE: kube.caFile,
    DRAIN_KUBE_TOKEN_FILE: tokenFile,
    POD_NAMESPACE: NS,
    POD_NAME: me.podName,
    POD_UID: me.uid,
    POD_IP: me.ip,
    DRAIN_SETTLE: `${SETTLE_MS}ms`,
    DRAIN_TIMEOUT: '20s',
  })
  try {
    await sidecar.waitForLog('kube_access_ok')
    const load = loaded ? startLoad(sidecar.url) : undefined
    await sleep(WARMUP_MS)
    const hook = fetch(`${sidecar.url}/prestop`).then(async (response) => {
      const at = performance.now()
      await response.json()
      return at
    })
    await sidecar.waitForLog('endpoints_listed')
    await sleep(HOLD_BEFORE_REMOVAL_MS)
    const removedAt = performance.now()
    kube.upsert(slice(TERMINATING))
    const answeredAt = await hook
    const stats = await load?.stop()
    // The sidecar's own view: settle phase end (log time) minus its start, beyond DRAIN_SETTLE.
    const settle = sidecar.logs.find((l) => l.event === 'phase_finished' && l.phase === 'settle')
    const settleLatenessMs = typeof settle?.durationSeconds === 'number' ? settle.durationSeconds * 1_000 - SETTLE_MS : undefined
    const result: RunResult = { releaseDelayMs: answeredAt - removedAt - SETTLE_MS, settleLatenessMs }
    if (stats) {
      const pct = (p: number) => percentile(stats.latenciesMs, p) ?? Number.NaN
      result.load = { rps: stats.sent / stats.seconds, errors: stats.errors, p50: pct(50), p99: pct(99) }
    }
    return result
  } finally {
    await sidecar.stop()
  }
}

// The same median and percentiles as the rollout bench (sim/common.ts).
const summarize = (values: number[]) => ({ median: median(values) ?? Number.NaN, min: Math.min(...values), max: Math.max(...values) })
const ms = (value: number) => `${value.toFixed(1)} ms`

const kube = await startFakeKube({ namespace: NS })
const dir = await mkdtemp(join(tmpdir(), 'dc-bench-'))
const tokenFile = join(dir, 'token')
await writeFile(tokenFile, 'test-token')
const baseline: RunResult[] = []
const loaded: RunResult[] = []
try {
  // Interleaved, so drift in the machine's load hits both sides alike.
  for (let i = 0; i < RUNS; i++) {
    baseline.push(await run(kube, tokenFile, false))
    loaded.push(await run(kube, tokenFile, true))
  }
} finally {
  await kube.close()
  await rm(dir, { recursive: true, force: true })
}

const base = summarize(baseline.map((r) => r.releaseDelayMs))
const load = summarize(loaded.map((r) => r.releaseDelayMs))
const rps = summarize(loaded.map((r) => r.load!.rps))
const p99 = summarize(loaded.map((r) => r.load!.p99))
const errors = loaded.reduce((sum, r) => sum + r.load!.errors, 0)
const report = {
  when: new Date().toISOString(),
  node: process.version,
  settings: { rate: RATE, runs: RUNS, settleMs: SETTLE_MS, connections: CONNECTIONS, paths: PATHS },
  baseline: { releaseDelayMs: base, settleLatenessMs: summarize(baseline.map((r) => r.settleLatenessMs ?? Number.NaN)) },
  loaded: {
    releaseDelayMs: load,
    settleLatenessMs: summarize(loaded.map((r) => r.settleLatenessMs ?? Number.NaN)),
    achievedRps: rps,
    probeP99Ms: p99,
    probeErrors: errors,
  },
  addedDelayMs: { median: load.median - base.median, max: load.max - base.max },
  runs: { baseline, loaded },
}
await mkdir(args.out!, { recursive: true })
const file = join(args.out!, 'probes.json')
await writeFile(file, JSON.stringify(report, null, 2) + '\n')

console.log(`Release delay (hook answered − endpoint removed − DRAIN_SETTLE ${SETTLE_MS} ms), ${RUNS} runs each, ${process.version}:`)
console.log(`| | median | min | max | settle timer late by (median) |`)
console.log(`|---|---|---|---|---|`)
console.log(
  `| no probe traffic | ${ms(base.median)} | ${ms(base.min)} | ${ms(base.max)} | ${ms(report.baseline.settleLatenessMs.median)} |`,
)
console.log(
  `| ${Math.round(rps.median)} req/s of /ready,/healthz,/metrics | ${ms(load.median)} | ${ms(load.min)} | ${ms(load.max)} | ${ms(report.loaded.settleLatenessMs.median)} |`,
)
console.log(
  `\nAdded by the load: median ${ms(report.addedDelayMs.median)}, max ${ms(report.addedDelayMs.max)}. Probe latency p99 (median of runs): ${ms(p99.median)}; probe errors: ${errors}.`,
)
console.log(`JSON: ${file}`)
