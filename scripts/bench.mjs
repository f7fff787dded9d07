#!/usr/bin/env zx
// npm run bench: strategies side by side under three conditions, then the scale run (see sim/bench.ts), then the
// release delay under probe and scrape load (scripts/bench-probes.ts, also `npm run bench:probes`).
// Options: --strategies=no-prestop,sleep,dc-watch,dc-poll --conditions=normal,slow-control-plane,slow-load-balancer
//          --scale=1,100,1000 --skip-scale --skip-scenarios --skip-probes --out=bench-results
import { $, argv, cd } from 'zx'

cd(new URL('..', import.meta.url).pathname)
// The bench measures the current source: bundle it (esbuild only; `npm run build` also type-checks).
await $({ stdio: 'inherit' })`node scripts/bundle.mjs`
const { runBench, benchMarkdown } = await import('../sim/bench.ts')
const list = (value) => (typeof value === 'string' && value !== '' ? value.split(',') : undefined)
const result = await runBench({
  strategies: list(argv.strategies),
  conditions: list(argv.conditions),
  scaleSizes: list(String(argv.scale ?? ''))?.map(Number),
  skipScale: Boolean(argv['skip-scale']),
  skipScenarios: Boolean(argv['skip-scenarios']),
  outDir: argv.out ?? 'bench-results',
})
console.log(benchMarkdown(result))
console.log(`\nJSON: ${result.file}`)
if (!argv['skip-probes']) await $({ stdio: 'inherit' })`node scripts/bench-probes.ts --out=${argv.out ?? 'bench-results'}`
