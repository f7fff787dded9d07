/**
 * The traffic-quiet gate against a load balancer that lags by different amounts, at one DRAIN_SETTLE upper bound
 * (20 s): for each lag, a preStop `sleep`, drain-coordinator with a fixed 2 s settle, and drain-coordinator with the
 * gate, once with an app that turns keep-alive off on its shutdown URL and once with one that does not.
 * What the hold missed is checked two ways: requests that failed at the load generator, and requests that reached
 * an old pod's app after its SIGTERM (the app counts them), which a hold long enough would have made impossible.
 */
import { median } from './common.ts'
import { runScenario, type Condition, type ScenarioResult, type ScenarioOptions } from './scenario.ts'

export const LAGS_MS = [200, 1_000, 4_000, 8_000]
const CONTROLLER_DELAY_MS = 100
const QUIET_PERIOD_MS = 1_000
const GATE_UPPER_BOUND_MS = 20_000

type Variant = { label: string; app: 'off' | 'on' | '–'; options: Omit<ScenarioOptions, 'condition'> }

const VARIANTS: Variant[] = [
  { label: 'sleep 5 s', app: '–', options: { strategy: 'sleep', sleepMs: 5_000 } },
  { label: 'dc fixed settle 2 s', app: '–', options: { strategy: 'dc-watch', settleMs: 2_000, drainTimeoutMs: 25_000 } },
  {
    label: 'dc quiet gate',
    app: 'off',
    options: {
      strategy: 'dc-quiet',
      appKeepAlive: 'off',
      settleMs: GATE_UPPER_BOUND_MS,
      drainTimeoutMs: 25_000,
      quietPeriodMs: QUIET_PERIOD_MS,
    },
  },
  {
    label: 'dc quiet gate',
    app: 'on',
    options: {
      strategy: 'dc-quiet',
      appKeepAlive: 'on',
      settleMs: GATE_UPPER_BOUND_MS,
      drainTimeoutMs: 25_000,
      quietPeriodMs: QUIET_PERIOD_MS,
    },
  },
]

export type LagSweepRow = {
  lagMs: number
  variant: string
  appKeepAliveOnShutdown: string
  /** controller delay + lag + quiet period + 300 ms: the hold the gate should stay within. */
  boundMs: number
  result: ScenarioResult
}

export async function runLagSweep(lags: number[] = LAGS_MS, log: (text: string) => void = () => {}): Promise<LagSweepRow[]> {
  const rows: LagSweepRow[] = []
  for (const lagMs of lags) {
    const condition: Condition = {
      name: `lb-lag-${lagMs}ms`,
      description: `endpoint controller reacts in ${CONTROLLER_DELAY_MS} ms, load balancer lags ${lagMs} ms`,
      controllerDelayMs: CONTROLLER_DELAY_MS,
      lbLagMs: lagMs,
    }
    for (const variant of VARIANTS) {
      const began = performance.now()
      // 40 s of grace: no strategy here is cut short by the kubelet, so each shows its own hold.
      const result = await runScenario({ graceMs: 40_000, ...variant.options, condition })
      rows.push({
        lagMs,
        variant: variant.label,
        appKeepAliveOnShutdown: variant.app,
        boundMs: CONTROLLER_DELAY_MS + lagMs + QUIET_PERIOD_MS + 300,
        result,
      })
      log(
        `  lag ${String(lagMs).padStart(5)} ms  ${variant.label.padEnd(20)} app keep-alive ${variant.app.padEnd(3)} ${String(result.load.failed).padStart(4)} failed, hold max ${Math.round(result.hookHoldMs.max ?? NaN)} ms  (${((performance.now() - began) / 1_000).toFixed(1)} s)`,
      )
    }
  }
  return rows
}

const s = (ms: number | undefined) => (ms === undefined || Number.isNaN(ms) ? '–' : `${(ms / 1_000).toFixed(2)} s`)

export function lagSweepTable(rows: LagSweepRow[]): string {
  const lines = [
    '| LB lag | strategy | app keep-alive after shutdown URL | failed / sent | reached the app after SIGTERM | hook hold median / max | gate bound (delay + lag + quiet + 300 ms) | traffic lag seen (median) | settle ended by |',
    '|---:|---|---|---:|---:|---|---|---:|---|',
  ]
  for (const { lagMs, variant, appKeepAliveOnShutdown, boundMs, result } of rows) {
    const settles = result.drains.map((d) => d.settle).filter((x) => x !== undefined)
    const lags = settles
      .map((x) => x.trafficLagSeconds)
      .filter((x): x is number => typeof x === 'number')
      .map((x) => x * 1_000)
    const endedBy = [...new Set(settles.map((x) => String(x.endedBy)))].join(', ') || '–'
    const gate = variant.startsWith('dc quiet')
    const within = result.hookHoldMs.max !== undefined && result.hookHoldMs.max <= boundMs ? 'within' : 'over'
    lines.push(
      `| ${s(lagMs)} | ${variant} | ${appKeepAliveOnShutdown} | ${result.load.failed} / ${result.load.sent} | ${result.arrivedAfterSigterm} | ${s(result.hookHoldMs.median)} / ${s(result.hookHoldMs.max)} | ${gate ? `${s(boundMs)} (${within})` : '–'} | ${gate ? s(median(lags)) : '–'} | ${gate ? endedBy : '–'} |`,
    )
  }
  return lines.join('\n')
}
