/**
 * The rollout benchmark: every strategy under every condition, one after the other with the same load and
 * delays, then the scale run. Markdown tables on stdout, progress on stderr, everything in a JSON file.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { type LagSweepRow, lagSweepTable, runLagSweep } from './lag-sweep.ts'
import { scaleProgress, scaleTable, scenarioTable } from './report.ts'
import { runScale, type ScaleResult } from './scale.ts'
import { CONDITIONS, type ConditionName, runScenario, type ScenarioResult, STRATEGIES, type Strategy } from './scenario.ts'

type BenchOptions = {
  strategies?: Strategy[]
  conditions?: ConditionName[]
  scaleSizes?: number[]
  skipScenarios?: boolean
  skipScale?: boolean
  skipLagSweep?: boolean
  lags?: number[]
  outDir: string
  /** Where progress lines go; stderr by default. */
  log?: (line: string) => void
}

export async function runBench(
  options: BenchOptions,
): Promise<{ file: string; scenarios: ScenarioResult[]; scale: ScaleResult[]; lagSweep: LagSweepRow[] }> {
  const log = options.log ?? ((text: string) => process.stderr.write(`${text}\n`))
  const scenarios: ScenarioResult[] = []
  const scale: ScaleResult[] = []
  const startedAt = new Date()
  if (!options.skipScenarios) {
    for (const conditionName of options.conditions ?? (Object.keys(CONDITIONS) as ConditionName[])) {
      const condition = CONDITIONS[conditionName]
      for (const strategy of options.strategies ?? [...STRATEGIES]) {
        const began = performance.now()
        // runScenario's defaults are the bench's settings; each result records the options it ran with.
        const result = await runScenario({ strategy, condition })
        scenarios.push(result)
        log(
          `  ${condition.name.padEnd(19)} ${strategy.padEnd(11)} ${String(result.load.sent).padStart(5)} sent ${String(result.load.failed).padStart(4)} failed  (${((performance.now() - began) / 1_000).toFixed(1)} s)`,
        )
      }
    }
  }
  const lagSweep = options.skipLagSweep ? [] : await runLagSweep(options.lags, log)
  if (!options.skipScale) {
    for (const mode of ['watch', 'poll'] as const) {
      for (const n of options.scaleSizes ?? [1, 100, 1_000]) {
        const began = performance.now()
        const result = await runScale({ n, mode })
        scale.push(result)
        log(scaleProgress(result, performance.now() - began))
      }
    }
  }
  await mkdir(options.outDir, { recursive: true })
  const file = join(options.outDir, `bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`)
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version, platform: process.platform }
  await writeFile(
    file,
    JSON.stringify({ startedAt: startedAt.toISOString(), machine, conditions: CONDITIONS, scenarios, lagSweep, scale }, null, 2) + '\n',
  )
  return { file, scenarios, scale, lagSweep }
}

export function benchMarkdown(result: { scenarios: ScenarioResult[]; scale: ScaleResult[]; lagSweep?: LagSweepRow[] }): string {
  const parts: string[] = []
  if (result.scenarios.length > 0) parts.push(scenarioTable(result.scenarios))
  if (result.lagSweep && result.lagSweep.length > 0) parts.push(lagSweepTable(result.lagSweep))
  if (result.scale.length > 0) parts.push(scaleTable(result.scale))
  return parts.join('\n\n')
}
