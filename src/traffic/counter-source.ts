/**
 * A traffic source that is a cumulative counter behind an HTTP GET: Envoy's downstream counters, or the app's own
 * request counter. One reading per sample; a reading above the previous one means traffic arrived in between.
 * Stateful across the samples of one drain (the previous reading). Safe before tight: a sample whose reading
 * failed (no answer within the side-call timeout, a status that is not 2xx, a body over the cap, a body that does
 * not parse) counts as traffic, and so does the first good reading after it (what happened in between is
 * unknown), and so does a counter that went down (the peer restarted: its count started over).
 */
import { rejectedOnAbort } from '../abort.ts'
import { readBodyText } from '../bounded-body.ts'
import { type Clock, deadline } from '../clock.ts'
import { DrainCoordinatorError, UpstreamError, describeError } from '../errors.ts'
import type { Fetch } from '../transport.ts'
import { envoyStatsUrl, sumInboundCounters } from './envoy-stats.ts'
import { type Selector, sumSelected } from './prom-text.ts'

/** Largest answer read: a filtered /stats answer is a few KB; a big app's whole exposition a few MB. */
export const MAX_COUNTER_BODY_BYTES = 4 * 1024 * 1024

export type CounterSample = {
  /** What was read, as the settle report lists it. */
  source: string
  traffic: boolean
  /** Why this sample could not tell (it then counts as traffic). */
  problem?: string
  /** A reading that worked but selected nothing: the source sees no traffic at all, which may be a mistake. */
  warning?: string
}

export type CounterSourceOptions = Readonly<{
  source: string
  url: string
  fetch: Fetch
  clock: Clock
  timeoutMs: number
  maxBytes?: number
  accept: string
  /** The counter's value in a body; throws when the body is not what was expected. */
  read(text: string): { value: number; selected: number }
  /** Said once when a reading selected nothing. */
  emptyWarning: string
}>

/** Returns a factory: one fresh reader (with its own previous value) per drain. */
export function createCounterSource(options: CounterSourceOptions): () => () => Promise<CounterSample> {
  const { source, url, fetch, clock, timeoutMs, accept } = options
  const maxBytes = options.maxBytes ?? MAX_COUNTER_BODY_BYTES

  async function reading(): Promise<{ value: number; selected: number }> {
    const timeout = new DrainCoordinatorError('SIDE_CALL_TIMEOUT', `GET ${url} got no whole answer within ${timeoutMs}ms`)
    const bounded = deadline(clock, timeoutMs, timeout)
    try {
      // Raced against the deadline as well: a fetch or a body that ignores its signal cannot stall the sample.
      return await Promise.race([
        (async () => {
          let response: Response
          try {
            response = await fetch(url, { headers: { accept }, signal: bounded.signal })
          } catch (error) {
            if (bounded.signal.aborted) throw bounded.signal.reason
            throw new UpstreamError(`GET ${url}`, { message: describeError(error) }, { cause: error })
          }
          if (!response.ok) {
            await response.body?.cancel().catch(() => {})
            throw new UpstreamError(`GET ${url}`, { status: response.status })
          }
          return options.read(await readBodyText(`GET ${url}`, response, maxBytes, bounded.signal))
        })(),
        rejectedOnAbort(bounded.signal),
      ])
    } finally {
      bounded.cancel()
    }
  }

  return () => {
    let previous: number | undefined
    let failedBefore = false
    let warned = false
    return async function sample(): Promise<CounterSample> {
      let value: number
      let selected: number
      try {
        ;({ value, selected } = await reading())
      } catch (error) {
        previous = undefined
        failedBefore = true
        return { source, traffic: true, problem: `${source}: ${describeError(error)}` }
      }
      const last = previous
      previous = value
      const warning = selected === 0 && !warned ? ((warned = true), `${source}: ${options.emptyWarning}`) : undefined
      const base = { source, ...(warning === undefined ? {} : { warning }) }
      // The first reading of a drain is the baseline; after a failure, the gap in between cannot be told.
      if (last === undefined) return { ...base, traffic: failedBefore }
      if (value < last) return { ...base, traffic: true, problem: `${source}: the counter went down from ${last} to ${value} (restarted?)` }
      return { ...base, traffic: value > last }
    }
  }
}

/** Envoy's inbound downstream counters (envoy-stats.ts) on DRAIN_ENVOY_ADMIN_URL. */
export function envoyStatsSource(adminUrl: string, deps: { fetch: Fetch; clock: Clock; timeoutMs: number }) {
  const url = envoyStatsUrl(adminUrl)
  return createCounterSource({
    ...deps,
    source: `${adminUrl.replace(/\/+$/, '')}/stats`,
    url,
    accept: 'application/json',
    read: (text) => {
      const { sum, counters } = sumInboundCounters(text)
      return { value: sum, selected: counters.length }
    },
    emptyWarning:
      "no inbound listener.*.downstream_cx_total or http.*.downstream_rq_total counters (in Istio, include them with the proxyStatsMatcher of the pod's proxy config)",
  })
}

/** The app's own request counter: DRAIN_TRAFFIC_METRIC's series on DRAIN_TRAFFIC_METRIC_URL, summed. */
export function appMetricSource(metricUrl: string, selector: Selector, deps: { fetch: Fetch; clock: Clock; timeoutMs: number }) {
  return createCounterSource({
    ...deps,
    source: `${metricUrl} ${selector.text}`,
    url: metricUrl,
    // The classic text format: a server that can also speak OpenMetrics or UTF-8 names keeps to what is read here.
    accept: 'text/plain;version=0.0.4',
    read: (text) => {
      const { sum, series } = sumSelected(text, selector)
      return { value: sum, selected: series }
    },
    emptyWarning: 'the selector matched no series (the sum stays 0 until one appears)',
  })
}
