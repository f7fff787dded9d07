/**
 * `npm run demo`: one pod of a three-replica Service is replaced while clients send steady load; the old pod runs
 * drain-coordinator (the built bundle, watch mode) as a classic sidecar, with a fake Envoy admin API. Prints the
 * timeline and the request totals.
 */
import { formatLoad, formatTimeline } from './report.ts'
import { CONDITIONS, runScenario } from './scenario.ts'

export async function runDemo(): Promise<number> {
  const condition = CONDITIONS.normal
  const result = await runScenario({
    strategy: 'dc-watch', condition, replicas: 3, rollout: 1, ratePerSecond: 200, settleMs: 2_000, sleepMs: 5_000,
    envoy: true, probeReady: true,
  })
  const o = result.options
  console.log(`drain-coordinator demo: Service "web" with ${o.replicas} replicas behind a load balancer; pod web-old-0 is replaced.`)
  console.log(`  endpoint controller reacts in ${o.controllerDelayMs} ms; load balancer applies changes ${o.lbLagMs} ms late; DRAIN_SETTLE=${o.settleMs}ms, DRAIN_ENDPOINT_MODE=watch, terminationGracePeriodSeconds=${o.graceMs / 1_000}`)
  console.log('')
  console.log(formatTimeline(result))
  console.log('')
  const t = result.terminations[0]!
  const hold = t.hookEndedAt !== undefined && t.hookStartedAt !== undefined ? t.hookEndedAt - t.hookStartedAt : undefined
  console.log(`preStop hook held ${hold === undefined ? '–' : Math.round(hold)} ms (a fixed \`sleep 5\` holds 5000 ms); pod exited ${Math.round(t.podExitedAt! - t.deletedAt)} ms after deletion; the endpoint wait made ${result.apiRequests.total} API requests (${result.apiRequests.list} LIST, ${result.apiRequests.watch} WATCH).`)
  console.log(`requests: ${formatLoad(result)}`)
  if (result.load.failed > 0) console.log(`failures: ${JSON.stringify(result.load.details)}`)
  console.log('`npm run bench` compares this with no preStop hook and a fixed sleep under three conditions.')
  return result.load.failed === 0 ? 0 : 1
}
