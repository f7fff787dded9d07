/**
 * `npm run demo`: one pod of a three-replica Service is replaced while clients send steady load, twice with the
 * same rollout, load and delays: first without a preStop hook (kubelet sends SIGTERM at deletion), then with
 * drain-coordinator (the built bundle, watch mode) as a classic sidecar with a fake Envoy admin API. Prints both
 * timelines and the two side by side.
 */
import { formatComparison, formatLoad, formatTimeline } from './report.ts'
import { networkModeLine } from './netns.ts'
import { CONDITIONS, runScenario, type ScenarioOptions } from './scenario.ts'

export type DemoOptions = Partial<Omit<ScenarioOptions, 'strategy' | 'condition'>> & {
  /** Where the lines go; stdout by default. */
  print?: (line: string) => void
}

export async function runDemo({ print = (line) => console.log(line), ...overrides }: DemoOptions = {}): Promise<number> {
  const condition = CONDITIONS.normal
  const options = { condition, replicas: 3, rollout: 1, ratePerSecond: 200, settleMs: 2_000, sleepMs: 5_000, ...overrides }
  const withoutHook = await runScenario({ ...options, strategy: 'no-prestop' })
  const withSidecar = await runScenario({ ...options, strategy: 'dc-watch', envoy: true, probeReady: true })
  const o = withSidecar.options
  print(networkModeLine(withSidecar.network))
  print(`drain-coordinator demo: Service "web" with ${o.replicas} replicas behind a load balancer; pod web-old-0 is replaced, twice.`)
  print(
    `  endpoint controller reacts in ${o.controllerDelayMs} ms; load balancer applies changes ${o.lbLagMs} ms late; ` +
      `terminationGracePeriodSeconds=${o.graceMs / 1_000}; ${o.ratePerSecond} requests/s throughout`,
  )
  print('')
  print('1. Without a preStop hook: kubelet sends the app SIGTERM as soon as the pod is deleted.')
  print(formatTimeline(withoutHook))
  print(`   requests: ${formatLoad(withoutHook)}`)
  print('')
  print(`2. With drain-coordinator: preStop httpGet /prestop, DRAIN_ENDPOINT_MODE=watch, DRAIN_SETTLE=${o.settleMs}ms.`)
  print(formatTimeline(withSidecar))
  const t = withSidecar.terminations[0]!
  print(
    `   the endpoint wait made ${withSidecar.apiRequests.total} API requests (${withSidecar.apiRequests.list} LIST, ${withSidecar.apiRequests.watch} WATCH)`,
  )
  print(`   requests: ${formatLoad(withSidecar)}`)
  if (withSidecar.load.failed > 0) print(`   failures: ${JSON.stringify(withSidecar.load.details)}`)
  print('')
  print(
    formatComparison(
      [
        { label: 'no preStop hook', result: withoutHook },
        { label: 'drain-coordinator', result: withSidecar },
      ],
      { sleepMs: o.sleepMs },
    ),
  )
  print('')
  print('`npm run bench` compares these with a fixed sleep and poll mode under three conditions.')
  return withSidecar.load.failed === 0 && t.hookOutcome === 'ok' ? 0 : 1
}
