// kube-proxy as the data plane (npm run bench -- --data-plane=kube-proxy): the rollout on a real control plane with
// a real kube-proxy (nftables, or iptables with --proxy-mode=iptables) in a node network namespace, clients on the
// Service's ClusterIP (sim/data-plane.ts). Each strategy with clients that open a connection per request and with
// clients that keep connections alive. Needs root. Markdown table on stdout, progress on stderr, everything in a
// JSON file.
//   node scripts/bench-data-plane.ts [--strategies=no-prestop,sleep,dc-watch,dc-quiet] [--proxy-mode=nftables|iptables]
//                                    [--out=bench-results]
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { type DataPlaneOptions, type DataPlaneResult, runDataPlaneScenario, startDataPlane } from '../sim/data-plane.ts'
import { PROXY_MODES, type ProxyMode } from '../sim/proxy-rules.ts'

const KNOWN = ['no-prestop', 'sleep', 'dc-watch', 'dc-quiet'] as const
const { values } = parseArgs({
  options: {
    strategies: { type: 'string' },
    'proxy-mode': { type: 'string', default: 'nftables' },
    out: { type: 'string', default: 'bench-results' },
  },
  strict: false,
})
const strategies = (typeof values.strategies === 'string' ? values.strategies.split(',') : [...KNOWN]) as Array<
  DataPlaneOptions['strategy']
>
const unknown = strategies.filter((s) => !(KNOWN as readonly string[]).includes(s))
if (unknown.length > 0) {
  console.error(`--strategies: unknown ${unknown.join(', ')}; expected a comma-separated list of ${KNOWN.join(', ')}`)
  process.exit(2)
}
const proxyMode = values['proxy-mode'] as ProxyMode
if (!PROXY_MODES.includes(proxyMode)) {
  console.error(`--proxy-mode=${String(values['proxy-mode'])}: expected ${PROXY_MODES.join(' or ')}`)
  process.exit(2)
}
if (process.getuid?.() !== 0) {
  console.error('--data-plane=kube-proxy needs root: kube-proxy, its clients and the pods run in network namespaces')
  process.exit(2)
}
const log = (line: string) => process.stderr.write(`${line}\n`)
const results: Array<DataPlaneResult & { label: string }> = []
const dp = await startDataPlane({ log, proxyMode })
let failed = false
try {
  for (const appSigterm of ['graceful', 'exit'] as const)
    for (const keepAlive of [false, true]) {
      for (const strategy of strategies) {
        const variants = strategy === 'dc-quiet' ? (['off', 'on'] as const) : (['off'] as const)
        for (const appKeepAlive of variants) {
          const label =
            strategy === 'dc-quiet'
              ? `dc-quiet, app ${appKeepAlive === 'off' ? 'ends keep-alive' : 'keeps keep-alive'} on shutdown URL`
              : strategy
          const began = performance.now()
          const result = await runDataPlaneScenario(dp, { strategy, keepAlive, appKeepAlive, appSigterm })
          results.push({ ...result, label })
          log(
            `  kube-proxy (${proxyMode}) app ${appSigterm.padEnd(8)} ${keepAlive ? 'keep-alive ' : 'new-conns  '} ${label.padEnd(42)} ${String(result.load.sent).padStart(5)} sent ${String(result.load.failed).padStart(4)} failed  hold ${result.hookHoldMs.max === undefined ? '-' : `${Math.round(result.hookHoldMs.max)} ms`}  pinned ${result.pinnedAtSigterm ?? '-'}  (${((performance.now() - began) / 1_000).toFixed(1)} s)`,
          )
        }
      }
    }
} catch (error) {
  failed = true
  throw error
} finally {
  await dp.close({ keepLogs: failed })
}

const ms = (v: number | undefined) => (v === undefined ? '-' : `${(v / 1_000).toFixed(1)} s`)
const rows = [
  '| app on SIGTERM | clients | strategy | sent | failed | failures | hook held | connections pinned to the pod at SIGTERM | kube-proxy dropped the pod after |',
  '|---|---|---|---:|---:|---|---:|---:|---:|',
  ...results.map(
    (r) =>
      `| ${r.appSigterm === 'exit' ? 'exits at once' : 'graceful'} | ${r.keepAlive ? 'keep-alive' : 'new connection per request'} | ${r.label} | ${r.load.sent} | ${r.load.failed} | ${
        Object.entries(r.load.details)
          .map(([k, n]) => `${n}× ${k}`)
          .join(', ') || '-'
      } | ${ms(r.hookHoldMs.max)} | ${r.pinnedAtSigterm ?? '-'} | ${ms(r.rulesUpdatedMs)} |`,
  ),
]
console.log(`kube-proxy in ${proxyMode} mode\n`)
console.log(rows.join('\n'))
mkdirSync(values.out as string, { recursive: true })
const file = join(values.out as string, `bench-data-plane-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
writeFileSync(file, JSON.stringify({ proxyMode, results }, null, 2) + '\n')
console.log(`\nJSON: ${file}`)
