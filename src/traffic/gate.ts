/**
 * The settle phase. Quiet mode: after the endpoint wait, release once no traffic has reached the app for the quiet
 * period, no sooner than the floor (DRAIN_SETTLE_MIN) and no later than the upper bound (DRAIN_SETTLE). Fixed mode
 * (DRAIN_QUIET_PERIOD=0, or no traffic source): wait the upper bound, as a plain settle does.
 *
 * Traffic is known only at samples: traffic seen at a sample happened at most one interval before it, so the quiet
 * period is counted from the sample, never from a guess in between. The report is readable at any moment
 * (`progress`), so a settle the deadline cuts short still says what it saw.
 */
import type { Clock } from '../clock.ts'
import type { Logger } from '../log.ts'
import type { Observation } from './observer.ts'

export type SettleEnd = 'quiet' | 'upper bound' | 'deadline'

export type SettleReport = {
  mode: 'quiet' | 'fixed'
  /** What the samples read (quiet mode): /proc files, and the URLs of the HTTP counter sources. */
  sources: string[]
  /** From the end of the endpoint wait to the last sample that saw traffic; 0 if none did; null in fixed mode. */
  trafficLagSeconds: number | null
  endedBy: SettleEnd
  /** Quiet mode: samples taken, and of them how many saw traffic. */
  samples?: number
  trafficSamples?: number
}

export type SettleOptions = Readonly<{
  clock: Clock
  log: Logger
  /** A fresh observer for this drain; undefined: no source, fixed mode. */
  observe: (() => Promise<Observation>) | undefined
  quietMs: number
  minMs: number
  maxMs: number
  intervalMs: number
}>

/** 100 ms: fine enough that the hold overshoots the quiet period by little, coarse enough to cost nothing. */
export const SAMPLE_INTERVAL_MS = 100

export function createSettle(options: SettleOptions) {
  const { clock, log, quietMs, minMs, maxMs, intervalMs } = options
  const observe = quietMs > 0 ? options.observe : undefined
  const startedAt = clock.now()
  let lastTrafficAt: number | undefined
  let samples = 0
  let trafficSamples = 0
  const sources = new Set<string>()
  let problemLogged = false
  const problemSources = new Set<string>()
  const seconds = (ms: number) => Math.round(ms) / 1_000

  function report(endedBy: SettleEnd): SettleReport {
    if (observe === undefined) return { mode: 'fixed', sources: [], trafficLagSeconds: null, endedBy }
    return {
      mode: 'quiet',
      sources: [...sources],
      trafficLagSeconds: seconds((lastTrafficAt ?? startedAt) - startedAt),
      endedBy,
      samples,
      trafficSamples,
    }
  }

  async function sample(): Promise<boolean> {
    let observation: Observation
    try {
      observation = await observe!()
    } catch (error) {
      // An observer that throws has seen nothing: that is not quiet.
      if (!problemLogged) log.warn('traffic_unobservable', { error, effect: 'counted as traffic' })
      problemLogged = true
      return true
    }
    for (const source of observation.sources) sources.add(source)
    // Once per drain and source (a problem names its source before the first ': ').
    const fresh = observation.problems.filter((problem) => !problemSources.has(problem.split(': ')[0]!))
    if (fresh.length > 0) {
      for (const problem of fresh) problemSources.add(problem.split(': ')[0]!)
      log.warn('traffic_unobservable', { problems: fresh, effect: 'counted as traffic' })
    }
    if (observation.traffic) {
      log.debug('traffic_seen', {
        open: observation.open,
        opened: observation.opened,
        unexplainedOpens: observation.unexplainedOpens,
        appPorts: observation.appPorts,
        countersRose: observation.countersRose ?? [],
      })
    }
    return observation.traffic
  }

  return {
    /** The report so far, as if the phase ended now for `endedBy`. */
    progress: report,
    async run(signal: AbortSignal): Promise<SettleReport> {
      if (observe === undefined) {
        await clock.sleep(maxMs, signal)
        return report('upper bound')
      }
      for (;;) {
        const traffic = await sample()
        const now = clock.now()
        samples++
        if (traffic) {
          trafficSamples++
          lastTrafficAt = now
        }
        const elapsed = now - startedAt
        const quietFor = now - (lastTrafficAt ?? startedAt)
        if (elapsed >= minMs && quietFor >= quietMs) return report('quiet')
        if (elapsed >= maxMs) return report('upper bound')
        // The last sleep before the quiet period (and the floor) is up is only as long as what is left of it.
        const untilQuiet = Math.max(quietMs - quietFor, minMs - elapsed)
        await clock.sleep(Math.min(intervalMs, untilQuiet, maxMs - elapsed), signal)
      }
    },
  }
}
