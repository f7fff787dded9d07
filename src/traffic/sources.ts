/**
 * One sample of every traffic source of a drain: the counters behind HTTP (Envoy's stats, the app's metric) and
 * the kernel's view (/proc). Traffic seen by any source is traffic: a source can only add evidence, never
 * overrule another's. The HTTP sources are read first and the /proc files after, so the connections the
 * sidecar's own GETs open are already in the tables (and in Tcp PassiveOpens) when /proc is read, where the
 * observer recognises them as the sidecar's own.
 */
import type { Logger } from '../log.ts'
import type { CounterSample } from './counter-source.ts'
import type { Observation } from './observer.ts'

export function combineSources(
  proc: () => Promise<Observation>,
  counters: ReadonlyArray<() => Promise<CounterSample>>,
  log: Logger,
): () => Promise<Observation> {
  return async function observe(): Promise<Observation> {
    const samples = await Promise.all(counters.map((sample) => sample()))
    const observation = await proc()
    for (const { warning } of samples)
      if (warning !== undefined)
        log.warn('traffic_source_empty', { problem: warning, effect: 'this source sees no traffic; the others still count' })
    const rose = samples.filter((s) => s.traffic && s.problem === undefined).map((s) => s.source)
    return {
      ...observation,
      traffic: observation.traffic || samples.some((s) => s.traffic),
      sources: [...samples.filter((s) => s.problem === undefined).map((s) => s.source), ...observation.sources],
      problems: [...samples.flatMap((s) => (s.problem === undefined ? [] : [s.problem])), ...observation.problems],
      ...(rose.length > 0 ? { countersRose: rose } : {}),
    }
  }
}
