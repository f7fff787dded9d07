/** Rendering of scenario and scale results: the demo's timeline and the bench's Markdown tables. */
import type { ScaleResult } from './scale.ts'
import type { ScenarioResult, TimelineEntry } from './scenario.ts'

const ms = (value: number | undefined) => (value === undefined ? '–' : `${Math.round(value)}`)
const seconds = (value: number | undefined) => (value === undefined ? '–' : `${(value / 1_000).toFixed(2)} s`)

function describe(entry: TimelineEntry, result: ScenarioResult): string | undefined {
  const o = result.options
  switch (`${entry.source}/${entry.event}`) {
    case 'load/load_started':
      return `load starts: ${entry.detail} through the load balancer (half keep-alive, half new connections)`
    case 'kubelet/new_pod_ready':
      return `new pod ${entry.pod} ready (the rollout's replacement)`
    case 'kubelet/pod_deleted':
      return `pod ${entry.pod} deleted: kubelet calls preStop, sends the classic sidecar SIGTERM`
    case 'sidecar/drain_started':
      return `drain-coordinator starts draining (${entry.detail})`
    case 'sidecar/ready_503':
      return `${entry.pod}: /ready answers 503`
    case 'envoy/admin_call':
      return undefined
    case 'sidecar/envoy_drained':
      return `${entry.pod}: Envoy drained (${entry.detail})`
    case 'endpoint-controller/endpoint_ready_in_api':
      return `API: ${entry.pod} endpoint added, ready`
    case 'endpoint-controller/endpoint_not_ready_in_api':
      return `API: ${entry.pod} endpoint ready=false, serving=true, terminating=true`
    case 'sidecar/endpoint_wait_finished':
      return `${entry.pod}: drain-coordinator saw it (endpoint wait over, ${entry.detail}); settle ${o.settleMs} ms`
    case 'load-balancer/started_routing':
      return `load balancer starts routing to ${entry.pod}`
    case 'load-balancer/stopped_routing':
      return `load balancer stopped routing to ${entry.pod}`
    case 'sidecar/drain_finished':
      return `${entry.pod}: drain finished (${entry.detail})`
    case 'kubelet/hook_released':
      return `${entry.pod}: preStop hook answered; kubelet goes on`
    case 'kubelet/hook_failed':
      return `${entry.pod}: preStop hook FAILED (${entry.detail ?? ''})`
    case 'kubelet/sigterm':
      return `${entry.pod}: SIGTERM to the app`
    case 'kubelet/app_exited':
      return `${entry.pod}: app exited`
    case 'kubelet/sidecar_exited':
      return `${entry.pod}: drain-coordinator exited`
    case 'endpoint-controller/endpoint_removed_in_api':
      return `API: ${entry.pod} endpoint removed (pod gone)`
    case 'load/first_failed_request':
      return `first failed request (${entry.detail})`
    case 'load/last_failed_request':
      return `last failed request (${entry.detail})`
    case 'load/load_stopped':
      return 'load stops'
    default:
      return `${entry.source}: ${entry.event} ${entry.pod ?? ''} ${entry.detail ?? ''}`
  }
}

export function formatTimeline(result: ScenarioResult): string {
  const t0 = result.firstDeletionAt ?? result.startedAt
  const lines = [] as string[]
  for (const entry of result.timeline) {
    const text = describe(entry, result)
    if (text === undefined) continue
    const offset = Math.round(entry.at - t0)
    lines.push(`  t${offset >= 0 ? '+' : '-'}${String(Math.abs(offset)).padStart(5)} ms  ${text}`)
  }
  return lines.join('\n')
}

export function formatLoad(result: ScenarioResult): string {
  const l = result.load
  const kinds = Object.entries(l.byKind)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ')
  return `${l.sent} requests sent, ${l.ok} answered 2xx, ${l.failed} failed${kinds ? ` (${kinds})` : ''}`
}

/** The demo's side-by-side summary: one column per run of the same rollout. */
export function formatComparison(runs: Array<{ label: string; result: ScenarioResult }>, { sleepMs }: { sleepMs: number }): string {
  const failures = (r: ScenarioResult) => {
    const kinds = Object.entries(r.load.byKind)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')
    return `${r.load.failed}${kinds ? ` (${kinds})` : ''}`
  }
  const hold = (r: ScenarioResult) => (r.hookHoldMs.max === undefined ? 'no hook' : `${ms(r.hookHoldMs.max)} ms`)
  const exit = (r: ScenarioResult) => `${ms(r.deletionToExitMs.max)} ms`
  const lost = (r: ScenarioResult) =>
    r.load.firstFailureAt === undefined || r.firstDeletionAt === undefined
      ? 'none'
      : `t+${ms(r.load.firstFailureAt - r.firstDeletionAt)} to t+${ms(r.load.lastFailureAt! - r.firstDeletionAt)} ms`
  const rows: Array<[string, (r: ScenarioResult) => string]> = [
    ['requests sent', (r) => String(r.load.sent)],
    ['requests failed', failures],
    ['failures between', lost],
    [`preStop hook held (a fixed sleep: ${sleepMs} ms)`, hold],
    ['pod exited after deletion', exit],
  ]
  const width = Math.max(...rows.map(([name]) => name.length)) + 2
  const columns = runs.map(({ label, result }) => Math.max(label.length, ...rows.map(([, cell]) => cell(result).length)) + 3)
  const line = (name: string, cells: string[]) => `  ${name.padEnd(width)}${cells.map((c, i) => c.padEnd(columns[i]!)).join('')}`.trimEnd()
  return [
    line(
      '',
      runs.map((r) => r.label),
    ),
    ...rows.map(([name, cell]) =>
      line(
        name,
        runs.map((r) => cell(r.result)),
      ),
    ),
  ].join('\n')
}

export function scenarioTable(results: ScenarioResult[]): string {
  const rows = [
    '| condition | strategy | requests sent (load duration) | failed | failures by kind | hook hold median / max | deletion → pod exit median / max | API requests per drain |',
    '|---|---|---:|---:|---|---|---|---:|',
  ]
  for (const r of results) {
    const kinds =
      Object.entries(r.load.byKind)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || '–'
    const hold = r.hookHoldMs.values.length === 0 ? 'no hook' : `${seconds(r.hookHoldMs.median)} / ${seconds(r.hookHoldMs.max)}`
    rows.push(
      `| ${r.condition} | ${r.strategy} | ${r.load.sent} (${(r.load.durationMs / 1_000).toFixed(1)} s) | ${r.load.failed} | ${kinds} | ${hold} | ${seconds(r.deletionToExitMs.median)} / ${seconds(r.deletionToExitMs.max)} | ${r.strategy.startsWith('dc-') ? r.apiRequests.perDrain.toFixed(1) : '–'} |`,
    )
  }
  return rows.join('\n')
}

/**
 * The bench's progress line for one scale run. A side with no sidecars (N = 1 has no crowd) says so instead of
 * printing `NaN ms`.
 */
export function scaleProgress(r: ScaleResult, elapsedMs: number): string {
  const p99 = (l: ScaleResult['detectionMs']) => (l.count === 0 ? 'none' : `${ms(l.p99)} ms`)
  return `  scale ${r.mode.padEnd(5)} N=${String(r.n).padEnd(5)} p99 ${p99(r.detectionMs)} (own process; sharing one: ${p99(r.sharedDetectionMs)}), ${r.apiRequestsPerDrain.toFixed(2)} requests/drain  (${(elapsedMs / 1_000).toFixed(1)} s)`
}

export function scaleTable(results: ScaleResult[]): string {
  const rows = [
    '| mode | N drains | slices | API requests per drain | bytes received per drain | sidecars in their own process | detection p50 | detection p99 | max | sidecars sharing one process: detection p50 / p99 | fake API fan-out time | unresolved |',
    '|---|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|',
  ]
  for (const r of results) {
    const requests = `${r.apiRequestsPerDrain.toFixed(2)} (${r.listPerDrain.toFixed(2)} LIST + ${r.watchPerDrain.toFixed(2)} WATCH)`
    const shared =
      r.sharedDetectionMs.count === 0
        ? '–'
        : `${ms(r.sharedDetectionMs.p50)} ms / ${ms(r.sharedDetectionMs.p99)} ms (${r.sharedDetectionMs.count})`
    rows.push(
      `| ${r.mode} | ${r.n} | ${r.slices} | ${requests} | ${Math.round(r.bytesPerDrain).toLocaleString('en')} | ${r.detectionMs.count} | ${ms(r.detectionMs.p50)} ms | ${ms(r.detectionMs.p99)} ms | ${ms(r.detectionMs.max)} ms | ${shared} | ${ms(r.apiFanOutMs)} ms | ${r.unresolved} |`,
    )
  }
  return rows.join('\n')
}
