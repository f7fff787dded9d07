/**
 * npm run bench (or `node scripts/bench-memory.ts`): the sidecar's peak memory (VmHWM) during a drain.
 *
 * Runs the bundle (dist/drain-coordinator.mjs) as a child process against the fake HTTPS Kubernetes API and reads
 * /proc/PID/status. Idle: a fresh sidecar, started and checked its RBAC, no drain. Large namespace: a drain whose
 * first LIST reads 400 slices of 100 endpoints. Hostile: one drain per hostile answer (sim/fakes/hostile-kube.ts),
 * each held to DRAIN_TIMEOUT. Every figure is a fresh process, shown beside the idle one of the same run.
 *
 * Goals (issue 8): large namespace at most idle + 30 MB; any hostile answer at most 150 MiB.
 * Options: --slices=400 --endpoints=100 --skip-hostile --out=bench-results
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { type FakeKube, startFakeKube } from '../sim/fakes/fake-kube.ts'
import { endpointSlice, READY, TERMINATING } from '../sim/fakes/fixtures.ts'
import { processMemory } from '../sim/fakes/held-hooks.ts'
import { HOSTILE, podSlice, startPodSidecar } from '../sim/fakes/hostile-kube.ts'

const { values: args } = parseArgs({
  options: {
    slices: { type: 'string', default: '400' },
    endpoints: { type: 'string', default: '100' },
    'skip-hostile': { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench-results' },
  },
})
const SLICES = Number(args.slices)
const ENDPOINTS = Number(args.endpoints)
if (!(Number.isInteger(SLICES) && SLICES >= 1 && SLICES <= 5_000 && Number.isInteger(ENDPOINTS) && ENDPOINTS >= 1 && ENDPOINTS <= 1_000)) {
  console.error('--slices: 1 to 5000 and --endpoints: 1 to 1000 expected')
  process.exit(2)
}
const NS = 'bench'
const POD_IP = '10.0.0.7'
const MiB = 1024 * 1024
const mib = (bytes: number) => (bytes / MiB).toFixed(1)

/** One fresh sidecar against `kube`; `drain` runs while it lives; resolves with its peak RSS. */
async function measure(
  kube: FakeKube,
  timeoutMs: number,
  drain?: (url: string) => Promise<string>,
): Promise<{ rss: number; outcome: string }> {
  const sidecar = await startPodSidecar(
    kube,
    NS,
    POD_IP,
    timeoutMs,
    process.env.BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS } : {},
  )
  try {
    await sidecar.waitForLog('kube_access_ok')
    const outcome = drain ? await drain(sidecar.url) : 'idle'
    return { rss: (await processMemory(sidecar.child.pid!)).peak, outcome }
  } finally {
    await sidecar.stop()
  }
}

const prestop = async (url: string) => ((await (await fetch(`${url}/prestop`)).json()) as { outcome: string }).outcome

const rows: Array<{ case: string; peakMiB: string; vsIdle: string; outcome: string; goal: string; met: boolean }> = []
const kube = await startFakeKube({ namespace: NS })
let idle: number
try {
  kube.upsert(podSlice(NS, POD_IP, READY))
  idle = (await measure(kube, 3_000)).rss
  rows.push({ case: 'idle (started, RBAC checked)', peakMiB: mib(idle), vsIdle: '1.00', outcome: '-', goal: '-', met: true })

  for (let i = 0; i < SLICES; i++) {
    kube.upsert(
      endpointSlice({
        name: `svc-${i}-slice`,
        service: `svc-${i % 40}`,
        namespace: NS,
        endpoints: Array.from({ length: ENDPOINTS }, (_, e) => ({
          ip: `198.18.${i & 255}.${e}`,
          podName: `pod-${i}-${e}-7d9f8b6c5d-x2k9p`,
          uid: `1b7e2c3a-4f5d-4e6f-9a8b-${String(i * 1000 + e).padStart(12, '0')}`,
          ...READY,
        })),
      }),
    )
  }
  const large = await measure(kube, 10_000, async (url) => {
    const answer = prestop(url)
    // Released once the LIST is through and the watch sees the endpoint go: the figure covers the whole LIST.
    // If the watch never opens, untilWatching's error is the one reported, not the hook's when the sidecar is stopped.
    answer.catch(() => {})
    await kube.untilWatching(1, 8_000)
    kube.upsert(podSlice(NS, POD_IP, TERMINATING))
    return answer
  })
  const largeGoal = idle + 30 * 1_000_000
  rows.push({
    case: `large namespace (${SLICES} slices x ${ENDPOINTS} endpoints)`,
    peakMiB: mib(large.rss),
    vsIdle: (large.rss / idle).toFixed(2),
    outcome: large.outcome,
    goal: `<= idle + 30 MB (${mib(largeGoal)} MiB)`,
    met: large.rss <= largeGoal,
  })
} finally {
  await kube.close()
}

for (const hostile of args['skip-hostile'] ? [] : HOSTILE) {
  const hostileKube = await startFakeKube({ namespace: NS })
  hostileKube.upsert(podSlice(NS, POD_IP, READY))
  hostileKube.alwaysFault(hostile.fault(hostileKube, POD_IP), hostile.verb)
  const timeoutMs = hostile.name.startsWith('endless') ? 10_000 : 3_000
  const result = await measure(hostileKube, timeoutMs, prestop).finally(() => hostileKube.close())
  rows.push({
    case: `hostile: ${hostile.name}`,
    peakMiB: mib(result.rss),
    vsIdle: (result.rss / idle).toFixed(2),
    outcome: result.outcome,
    goal: '<= 150 MiB',
    met: result.rss <= 150 * MiB,
  })
}

const table = [
  '| case | peak RSS (MiB) | x idle | outcome | goal | met |',
  '|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.case} | ${r.peakMiB} | ${r.vsIdle} | ${r.outcome} | ${r.goal} | ${r.met ? 'yes' : 'NO'} |`),
].join('\n')
console.log(`\n### Memory (VmHWM of the sidecar process, node ${process.version})\n\n${table}`)
await mkdir(args.out, { recursive: true })
const file = join(args.out, `memory-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
await writeFile(file, JSON.stringify({ node: process.version, idle, rows }, null, 2))
console.log(`\nJSON: ${file}`)
