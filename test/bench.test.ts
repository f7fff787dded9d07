/**
 * The bench's own output: what it prints for a scale run where one side has no sidecars at all (N = 1 runs no
 * crowd), which printed `NaN ms` before.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { runBench } from '../sim/bench.ts'

test('a scale run of N=1 reports "none" for the empty crowd, never NaN', async (t) => {
  const outDir = await mkdtemp(join(tmpdir(), 'bench-test-'))
  t.teardown(() => rm(outDir, { recursive: true, force: true }))
  const lines: string[] = []
  const result = await runBench({ skipScenarios: true, skipLagSweep: true, scaleSizes: [1], outDir, log: (line) => lines.push(line) })
  t.is(result.scale.length, 2, 'watch and poll')
  const scaleLines = lines.filter((line) => line.includes('scale '))
  t.is(scaleLines.length, 2, lines.join('\n'))
  for (const line of scaleLines) {
    t.notRegex(line, /NaN/)
    t.regex(line, /p99 \d+ ms \(own process; sharing one: none\)/)
  }
})
