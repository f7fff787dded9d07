#!/usr/bin/env zx
// npm run bench: strategies side by side under three conditions, then the scale run (see sim/bench.ts), then the
// release delay under probe and scrape load (scripts/bench-probes.ts, also `npm run bench:probes`), then 2000 held
// hooks beside one (scripts/bench-hooks.ts), then the sidecar's peak memory: idle, a large namespace, and each
// hostile API answer (scripts/bench-memory.ts), then the footprint beside a bare Node http server
// (scripts/bench-footprint.ts, also `npm run bench:footprint`).
// Options: --strategies=no-prestop,sleep,dc-watch,dc-poll --conditions=normal,slow-control-plane,slow-load-balancer
//          --scale=1,100,1000 --skip-scale --skip-scenarios --skip-probes --skip-hooks --skip-memory --skip-footprint
//          --out=bench-results --lags=200,1000,4000,8000 (load-balancer lags for the traffic-quiet gate sweep, ms)
//          --skip-lag-sweep
//          --control-plane=real [--pods=20]: only the control-plane delays, measured on a real one
//          --data-plane=kube-proxy [--strategies=...] [--proxy-mode=nftables|iptables]: the rollout through a real
//          kube-proxy (root only; nftables mode unless told; see scripts/bench-data-plane.ts) instead of the
//          simulated load balancer
import { $, argv, cd } from 'zx'

cd(new URL('..', import.meta.url).pathname)
// The bench measures the current source: bundle it (esbuild only; `npm run build` also type-checks).
await $({ stdio: 'inherit' })`node scripts/bundle.mjs`
// --control-plane=real: the rollout's delays on a real etcd, kube-apiserver and kube-controller-manager instead
// (scripts/bench-control-plane.ts; --pods=N, default 20). The simulated control plane is the default.
const controlPlane = argv['control-plane'] ?? 'simulated'
if (controlPlane !== 'simulated' && controlPlane !== 'real') {
  console.error(`--control-plane=${controlPlane}: expected simulated or real`)
  process.exit(2)
}
const dataPlane = argv['data-plane'] ?? 'simulated'
if (dataPlane !== 'simulated' && dataPlane !== 'kube-proxy') {
  console.error(`--data-plane=${dataPlane}: expected simulated or kube-proxy`)
  process.exit(2)
}
if (argv['proxy-mode'] !== undefined && dataPlane !== 'kube-proxy') {
  console.error('--proxy-mode: only with --data-plane=kube-proxy (it picks the mode of the real kube-proxy)')
  process.exit(2)
}
if (dataPlane === 'kube-proxy') {
  // scripts/bench-data-plane.ts checks both against what it knows (its default mode: nftables).
  const strategies = argv.strategies ? [`--strategies=${argv.strategies}`] : []
  const proxyMode = argv['proxy-mode'] === undefined ? [] : [`--proxy-mode=${argv['proxy-mode']}`]
  const args = [...strategies, ...proxyMode, `--out=${argv.out ?? 'bench-results'}`]
  await $({ stdio: 'inherit' })`node scripts/bench-data-plane.ts ${args}`
  process.exit(0)
}
if (controlPlane === 'real') {
  await $({ stdio: 'inherit' })`node scripts/bench-control-plane.ts --pods=${argv.pods ?? 20} --out=${argv.out ?? 'bench-results'}`
  process.exit(0)
}
const { runBench, benchMarkdown } = await import('../sim/bench.ts')
const { networkModeLine } = await import('../sim/netns.ts')
// The first line of the output says where the pods run: their own network namespaces (root) or loopback addresses.
console.log(networkModeLine())
const { CONDITIONS, STRATEGIES } = await import('../sim/scenario.ts')
/** A comma-separated option, every entry one of `known`; a typo stops the bench instead of running the wrong thing. */
function list(name, known) {
  const value = argv[name]
  if (typeof value !== 'string' || value === '') return undefined
  const entries = value.split(',')
  const unknown = entries.filter((entry) => !known.includes(entry))
  if (unknown.length > 0) {
    console.error(`--${name}: unknown ${unknown.join(', ')}; expected a comma-separated list of ${known.join(', ')}`)
    process.exit(2)
  }
  return entries
}
const strategies = list('strategies', [...STRATEGIES])
const conditions = list('conditions', Object.keys(CONDITIONS))
const scaleSizes = argv.scale === undefined ? undefined : String(argv.scale).split(',').map(Number)
if (scaleSizes?.some((n) => !Number.isInteger(n) || n < 1)) {
  console.error(`--scale: ${argv.scale} is not valid; expected a comma-separated list of drain counts such as 1,100,1000`)
  process.exit(2)
}
const lags = argv.lags === undefined ? undefined : String(argv.lags).split(',').map(Number)
if (lags?.some((n) => !Number.isInteger(n) || n < 0)) {
  console.error(`--lags: ${argv.lags} is not valid; expected a comma-separated list of milliseconds such as 200,1000,4000,8000`)
  process.exit(2)
}
const result = await runBench({
  strategies,
  conditions,
  scaleSizes,
  skipScale: Boolean(argv['skip-scale']),
  skipScenarios: Boolean(argv['skip-scenarios']),
  skipLagSweep: Boolean(argv['skip-lag-sweep']),
  lags,
  outDir: argv.out ?? 'bench-results',
})
console.log(benchMarkdown(result))
console.log(`\nJSON: ${result.file}`)
if (!argv['skip-probes']) await $({ stdio: 'inherit' })`node scripts/bench-probes.ts --out=${argv.out ?? 'bench-results'}`
if (!argv['skip-hooks']) await $({ stdio: 'inherit' })`node scripts/bench-hooks.ts --out=${argv.out ?? 'bench-results'}`
if (!argv['skip-memory']) await $({ stdio: 'inherit' })`node scripts/bench-memory.ts --out=${argv.out ?? 'bench-results'}`
if (!argv['skip-footprint']) await $({ stdio: 'inherit' })`node scripts/bench-footprint.ts --out=${argv.out ?? 'bench-results'}`
