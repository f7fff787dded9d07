/**
 * npm run bench (or node scripts/bench-hooks.ts): how fast are many held hooks answered, and what do they cost?
 *
 * Runs the bundle (dist/drain-coordinator.mjs) against the fake HTTPS Kubernetes API, holds N hooks (one
 * connection each) on a drain that waits for the pod's endpoint, then removes it. Reports the **answer spread**:
 * the last hook's first answer byte − the drain's end (its drain_finished log line; both on Date.now(), so
 * millisecond resolution), and the process's memory: RSS idle, RSS with the hooks held, peak RSS (VmHWM).
 * Baseline runs hold one hook; the runs are interleaved, so drift in the machine's load hits both alike. The
 * hook clients run in this process and share the cores with the sidecar: their own reading is in the figure.
 *
 * Options: --hooks=2000 --runs=3 --out=bench-results
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { median } from '../sim/common.ts'
import { holdHooks, processMemory, startHeldDrain } from '../sim/fakes/held-hooks.ts'
import { BUNDLE } from '../sim/fakes/sidecar-process.ts'

const { values: args } = parseArgs({
  options: {
    hooks: { type: 'string', default: '2000' },
    runs: { type: 'string', default: '3' },
    out: { type: 'string', default: 'bench-results' },
  },
})
const HOOKS = Number(args.hooks)
const RUNS = Number(args.runs)
if (!Number.isInteger(HOOKS) || HOOKS < 1 || HOOKS > 20_000 || !Number.isInteger(RUNS) || RUNS < 1 || RUNS > 50) {
  console.error(`--hooks=${args.hooks} --runs=${args.runs}: expected whole numbers, hooks from 1 to 20000, runs from 1 to 50`)
  process.exit(2)
}
if (!existsSync(BUNDLE)) {
  console.error(`no bundle at ${BUNDLE}: run npm run build first`)
  process.exit(2)
}
/** The sidecar's memory limit in the shipped manifests. */
const LIMIT_MIB = Number(
  /limits:\s*\n\s*memory: (\d+)Mi/.exec(readFileSync('manifests/components/drain-coordinator-sidecar/sidecar.yaml', 'utf8'))?.[1],
)

type RunResult = {
  hooks: number
  firstMs: number
  medianMs: number
  lastMs: number
  idleMiB: number
  heldMiB: number
  peakMiB: number
  allOk: boolean
}

async function run(hooks: number): Promise<RunResult> {
  const drain = await startHeldDrain()
  try {
    const pid = drain.sidecar.child.pid!
    const idle = await processMemory(pid)
    const { answers } = await holdHooks(drain.sidecar, hooks, 120_000)
    const held = await processMemory(pid)
    drain.release()
    const all = await answers
    const finishedAt = await drain.finishedAt()
    const peak = await processMemory(pid)
    const delays = all.map((a) => a.at - finishedAt)
    const mib = (bytes: number) => bytes / 2 ** 20
    return {
      hooks,
      firstMs: Math.min(...delays),
      medianMs: median(delays) ?? Number.NaN,
      lastMs: Math.max(...delays),
      idleMiB: mib(idle.rss),
      heldMiB: mib(held.rss),
      peakMiB: mib(peak.peak),
      allOk: all.every((a) => a.status === 200),
    }
  } finally {
    await drain.close()
  }
}

const baseline: RunResult[] = []
const loaded: RunResult[] = []
for (let i = 0; i < RUNS; i++) {
  baseline.push(await run(1))
  loaded.push(await run(HOOKS))
}

const med = (results: RunResult[], key: keyof Omit<RunResult, 'allOk'>) => median(results.map((r) => r[key])) ?? Number.NaN
const report = {
  when: new Date().toISOString(),
  node: process.version,
  settings: { hooks: HOOKS, runs: RUNS, memoryLimitMiB: LIMIT_MIB },
  baseline: { lastMs: med(baseline, 'lastMs'), idleMiB: med(baseline, 'idleMiB'), peakMiB: med(baseline, 'peakMiB') },
  loaded: {
    firstMs: med(loaded, 'firstMs'),
    medianMs: med(loaded, 'medianMs'),
    lastMs: med(loaded, 'lastMs'),
    idleMiB: med(loaded, 'idleMiB'),
    heldMiB: med(loaded, 'heldMiB'),
    peakMiB: med(loaded, 'peakMiB'),
  },
  allAnswered200: [...baseline, ...loaded].every((r) => r.allOk),
  runs: { baseline, loaded },
}
await mkdir(args.out!, { recursive: true })
const file = join(args.out!, 'hooks.json')
await writeFile(file, JSON.stringify(report, null, 2) + '\n')

const ms = (value: number) => `${value.toFixed(0)} ms`
const mb = (value: number) => `${value.toFixed(0)} MiB`
const range = (results: RunResult[], key: 'lastMs' | 'peakMiB', unit: (v: number) => string) =>
  `${unit(Math.min(...results.map((r) => r[key])))}–${unit(Math.max(...results.map((r) => r[key])))}`
console.log(
  `Held hooks answered at the drain's end (answer's first byte − drain_finished), ${RUNS} runs each, median (range), ${process.version}:`,
)
console.log(
  `| held hooks | last answer after the drain's end | median answer | RSS idle | RSS while held | peak RSS (limit ${LIMIT_MIB} MiB) |`,
)
console.log(`|---|---|---|---|---|---|`)
console.log(
  `| 1 (baseline) | ${ms(report.baseline.lastMs)} (${range(baseline, 'lastMs', ms)}) | | ${mb(report.baseline.idleMiB)} | | ${mb(report.baseline.peakMiB)} |`,
)
console.log(
  `| ${HOOKS} | ${ms(report.loaded.lastMs)} (${range(loaded, 'lastMs', ms)}) | ${ms(report.loaded.medianMs)} | ${mb(report.loaded.idleMiB)} | ${mb(report.loaded.heldMiB)} | ${mb(report.loaded.peakMiB)} (${range(loaded, 'peakMiB', mb)}) |`,
)
console.log(`Every hook answered 200: ${report.allAnswered200}. JSON: ${file}`)
