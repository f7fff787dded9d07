/**
 * Envoy's own downstream counters, from its admin API: `GET /stats?format=json&filter=<RE2>` answers
 * `{"stats":[{"name":…,"value":…},…]}` (histograms, when any match, are one extra element without a value).
 * Pure: the URL, and the sum of the counters that mean "traffic reached the app through Envoy".
 *
 * Summed, both cumulative counters, so any request or connection between two reads raises the sum:
 *   - `http.<stat_prefix>.downstream_rq_total`: every HTTP request an HTTP connection manager received, including
 *     those on kept-alive connections that opened nothing new;
 *   - `listener.<address>.downstream_cx_total`: every connection a listener accepted, whatever its protocol
 *     (TCP proxy and TLS passthrough have no request counter).
 * Left out: the admin listener and its HCM (`listener.admin.`, `http.admin.`: the sidecar's own /stats calls land
 * there), and the per-worker copies of a listener's counters (`listener.<address>.worker_0.`, `.main_thread.`).
 * An Istio sidecar (recognised by its inbound listener on port 15006 or an `http.inbound_` prefix) carries the
 * app's outbound calls and its own probe and metrics ports too; there only the inbound side counts:
 * `listener.<address>_15006.` (virtualInbound) and HCM prefixes starting `inbound_`.
 */

/** RE2, as Envoy's `filter=` takes it (a partial match, so anchored here). */
export const ENVOY_STATS_FILTER = '^(listener\\..+\\.downstream_cx_total|http\\..+\\.downstream_rq_total)$'

export function envoyStatsUrl(adminUrl: string): string {
  return `${adminUrl.replace(/\/+$/, '')}/stats?format=json&filter=${encodeURIComponent(ENVOY_STATS_FILTER)}`
}

export class EnvoyStatsError extends Error {
  override name = 'EnvoyStatsError'
}

const LISTENER = /^listener\.(.+)\.downstream_cx_total$/
const HCM = /^http\.(.+)\.downstream_rq_total$/
const PER_WORKER = /\.(?:worker_\d+|main_thread)$/

/** The sum of the inbound downstream counters in a `/stats?format=json` body, and which counters it took. */
export function sumInboundCounters(text: string): { sum: number; counters: string[] } {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (error) {
    throw new EnvoyStatsError(`not JSON (${(error as Error).message})`)
  }
  const stats = (body as { stats?: unknown } | null)?.stats
  if (!Array.isArray(stats)) throw new EnvoyStatsError('no "stats" array')
  const entries: Array<{ name: string; value: number }> = []
  for (const entry of stats as unknown[]) {
    const { name, value } = (entry ?? {}) as { name?: unknown; value?: unknown }
    if (typeof name !== 'string' || !(LISTENER.test(name) || HCM.test(name))) continue
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new EnvoyStatsError(`${name} has no numeric value`)
    entries.push({ name, value })
  }
  const istio = entries.some(({ name }) => /^listener\..*_15006\.downstream_cx_total$/.test(name) || name.startsWith('http.inbound_'))
  const inbound = (name: string) => {
    const listener = LISTENER.exec(name)?.[1]
    if (listener !== undefined) return listener !== 'admin' && !PER_WORKER.test(listener) && (!istio || listener.endsWith('_15006'))
    const prefix = HCM.exec(name)![1]!
    return prefix !== 'admin' && (!istio || prefix.startsWith('inbound_'))
  }
  const taken = entries.filter(({ name }) => inbound(name))
  return { sum: taken.reduce((total, { value }) => total + value, 0), counters: taken.map(({ name }) => name) }
}
