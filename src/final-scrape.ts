/**
 * The last scrape. A drain's outcome reaches Prometheus only if it scrapes the sidecar between the release and
 * the process's exit, and a native sidecar is told to exit right after the app has stopped, often within
 * milliseconds. So, on the way out, the sidecar waits until one scrape has been served since the drain finished,
 * but only if it has been scraped before (nobody scraping: exit at once), and never longer than about one and a
 * half scrape intervals, nor the configured bound.
 */
import type { Clock } from './clock.ts'

export type FinalScrapeResult = 'scraped' | 'not-scraped' | 'timed-out' | 'cut-short' | 'disabled'

/** Gaps shorter than this are two scrapers (HA Prometheus pairs, a curl), not a scrape interval. */
const MIN_INTERVAL_MS = 1_000

export function createScrapeTracker(clock: Clock) {
  const scrapes: number[] = []
  let afterDrain = false
  const waiters = new Set<() => void>()

  return {
    /** Called for each /metrics answer; `drained` says whether the drain had finished when it was rendered. */
    scraped(drained: boolean): void {
      scrapes.push(clock.now())
      if (scrapes.length > 5) scrapes.shift()
      if (!drained) return
      afterDrain = true
      for (const wake of waiters) wake()
    },

    /**
     * Resolves once a scrape after the drain has been served, or when waiting would be pointless or too long, or
     * at once when `cut` aborts (a repeated signal).
     */
    async waitForFinalScrape(maxWaitMs: number, cut?: AbortSignal): Promise<{ result: FinalScrapeResult; waitedMs: number }> {
      const start = clock.now()
      const done = (result: FinalScrapeResult) => ({ result, waitedMs: Math.round(clock.now() - start) })
      if (maxWaitMs <= 0) return done('disabled')
      if (afterDrain) return done('scraped')
      if (scrapes.length === 0) return done('not-scraped')
      if (cut?.aborted) return done('cut-short')
      // The longest recent gap is the scrape interval (shorter ones are a second scraper); none seen yet: assume
      // the interval is as long as we may wait. Wait one and a half of it.
      const gaps = scrapes
        .slice(1)
        .map((at, i) => at - scrapes[i]!)
        .filter((gap) => gap >= MIN_INTERVAL_MS)
      const interval = gaps.length > 0 ? Math.max(...gaps) : maxWaitMs
      const bound = Math.min(maxWaitMs, interval * 1.5)
      const stop = new AbortController()
      const scraped = new Promise<void>((resolve) => waiters.add(resolve))
      // Stopped once the scrape came: the rejection of the stopped sleep then loses a race already decided.
      const timedOut = clock.sleep(bound, stop.signal).catch(() => {})
      let onCut: (() => void) | undefined
      const cutShort = new Promise<'cut-short'>((resolve) =>
        cut?.addEventListener('abort', (onCut = () => resolve('cut-short')), { once: true }),
      )
      const result: FinalScrapeResult = await Promise.race([
        scraped.then(() => 'scraped' as const),
        timedOut.then(() => 'timed-out' as const),
        cutShort,
      ])
      stop.abort()
      if (onCut) cut?.removeEventListener('abort', onCut)
      waiters.clear()
      return done(result)
    },
  }
}

export type ScrapeTracker = ReturnType<typeof createScrapeTracker>
