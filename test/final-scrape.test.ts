import test from 'ava'
import { createScrapeTracker } from '../src/final-scrape.ts'
import { FakeClock } from './helpers/fake-clock.ts'

test('nobody has ever scraped the sidecar: it exits at once', async (t) => {
  const tracker = createScrapeTracker(new FakeClock())
  t.deepEqual(await tracker.waitForFinalScrape(15_000), { result: 'not-scraped', waitedMs: 0 })
})

test('a scrape already served after the drain: it exits at once', async (t) => {
  const tracker = createScrapeTracker(new FakeClock())
  tracker.scraped(false)
  tracker.scraped(true)
  t.is((await tracker.waitForFinalScrape(15_000)).result, 'scraped')
})

test('scraped before the drain only: it waits for the next scrape', async (t) => {
  const clock = new FakeClock()
  const tracker = createScrapeTracker(clock)
  tracker.scraped(false)
  await clock.advance(10_000)
  tracker.scraped(false)
  let settled: unknown
  const waiting = tracker.waitForFinalScrape(15_000).then((value) => (settled = value))
  await clock.advance(4_000)
  t.is(settled, undefined)
  tracker.scraped(true)
  await waiting
  t.deepEqual(settled, { result: 'scraped', waitedMs: 4_000 })
})

test('the wait is bounded by one and a half scrape intervals', async (t) => {
  const clock = new FakeClock()
  const tracker = createScrapeTracker(clock)
  tracker.scraped(false)
  await clock.advance(2_000)
  tracker.scraped(false)
  const waiting = tracker.waitForFinalScrape(15_000)
  await clock.advance(3_000)
  t.deepEqual(await waiting, { result: 'timed-out', waitedMs: 3_000 })
})

test('the wait is bounded by DRAIN_FINAL_SCRAPE_WAIT, and 0 turns it off', async (t) => {
  const clock = new FakeClock()
  const tracker = createScrapeTracker(clock)
  tracker.scraped(false)
  const waiting = tracker.waitForFinalScrape(5_000)
  await clock.advance(5_000)
  t.is((await waiting).result, 'timed-out')
  t.is((await tracker.waitForFinalScrape(0)).result, 'disabled')
})

test('two scrapers a few milliseconds apart do not make the wait collapse to nothing', async (t) => {
  const clock = new FakeClock()
  const tracker = createScrapeTracker(clock)
  tracker.scraped(false)
  await clock.advance(5)
  tracker.scraped(false)
  let settled: unknown
  const waiting = tracker.waitForFinalScrape(15_000).then((value) => (settled = value))
  await clock.advance(10_000)
  t.is(settled, undefined, 'a 5 ms gap is not a scrape interval')
  tracker.scraped(true)
  await waiting
  t.like(settled, { result: 'scraped' })
})
