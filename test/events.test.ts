import { readFileSync } from 'node:fs'
import test from 'ava'
import { systemClock } from '../src/clock.ts'
import { drainFinishedEvent } from '../src/drain-events.ts'
import type { DrainSummary } from '../src/drain.ts'
import { createEventRecorder } from '../src/kube/events.ts'
import { staticToken } from '../src/kube/token.ts'
import { createFetch } from '../src/transport.ts'
import { captureLog } from './helpers/capture-log.ts'
import { testCoordinator } from './helpers/coordinator.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { startFakeKube } from '../sim/fakes/fake-kube.ts'
import { waitFor } from '../sim/cluster/kube-admin.ts'

const until = (what: string, check: () => boolean) =>
  waitFor(what, async () => (check() ? true : undefined), { timeoutMs: 10_000, intervalMs: 20 })

/** A drain against the fake API server over TLS, with Events recorded through the real recorder. */
async function drainWithEvents(
  t: import('ava').ExecutionContext,
  { endpoints = 'gone' as 'gone' | 'stuck', refuse = undefined as number | undefined } = {},
) {
  const kube = await startFakeKube({ namespace: 'shop' })
  const fetch = createFetch({ ca: readFileSync(kube.caFile, 'utf8') })
  t.teardown(async () => {
    await fetch.close()
    await kube.close()
  })
  if (refuse !== undefined) kube.refuseCore('events', refuse)
  const log = captureLog()
  const recorder = createEventRecorder({
    apiUrl: kube.url,
    namespace: 'shop',
    pod: { name: 'web-1', uid: 'uid-1' },
    fetch,
    token: staticToken('test-token'),
    clock: systemClock,
    userAgent: 'test',
    log,
  })
  const withEvents = testCoordinator({
    config: { timeoutMs: 1_000, settleMs: 10 },
    waitForEndpoints:
      endpoints === 'gone'
        ? async () => ({ slicesAtStart: 1, mode: 'watch' as const })
        : (signal) => new Promise((_r, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
    recordEvent: ({ type, reason, message }) => recorder.record(type, reason, message),
  })
  const summary = await withEvents.coordinator.start('hook')
  await recorder.flush(5_000)
  return { kube, summary, log: withEvents.log, recorderLog: log }
}

test('a completed drain: DrainStarted and DrainCompleted on the pod, with phases, traffic lag and the deadline', async (t) => {
  const { kube, summary } = await drainWithEvents(t)
  t.is(summary.outcome, 'completed')
  await until('two events', () => kube.events.length === 2)
  const [started, finished] = kube.events
  t.like(started, {
    type: 'Normal',
    reason: 'DrainStarted',
    involvedObject: { kind: 'Pod', name: 'web-1', namespace: 'shop', uid: 'uid-1' },
    source: { component: 'drain-coordinator' },
  })
  t.regex(started!.message, /started by the preStop hook/)
  t.like(finished, { type: 'Normal', reason: 'DrainCompleted' })
  t.regex(
    finished!.message,
    /^Drain completed in [\d.]+s; phases: app skipped, envoy skipped, endpoints ok [\d.]+s, settle ok [\d.]+s \(upper bound\); traffic lag: not measured; deadline: DRAIN_TIMEOUT 1s$/,
  )
})

test('a drain that hits its deadline: DrainTimedOut, a Warning', async (t) => {
  const { kube, summary } = await drainWithEvents(t, { endpoints: 'stuck' })
  t.is(summary.outcome, 'timeout')
  await until('two events', () => kube.events.length === 2)
  t.like(kube.events[1], { type: 'Warning', reason: 'DrainTimedOut' })
  t.regex(kube.events[1]!.message, /endpoints cancelled [\d.]+s, settle cancelled; traffic lag: not measured; deadline: DRAIN_TIMEOUT 1s$/)
})

for (const status of [403, 500]) {
  test(`Events refused with ${status}: the drain is the same, and the failure is logged once`, async (t) => {
    const { kube, summary, recorderLog } = await drainWithEvents(t, { refuse: status })
    t.is(summary.outcome, 'completed')
    t.is(kube.events.length, 0)
    const lines = recorderLog.lines.filter((l) => l.event === 'event_not_recorded')
    t.is(lines.length, 1, 'two Events failed, one line')
    t.regex(JSON.stringify(lines[0]!.error), new RegExp(`status ${status}`))
  })
}

test("a recorder that throws or never finishes changes neither the drain's timing nor its outcome", async (t) => {
  const run = async (recordEvent: (() => void) | undefined) => {
    const clock = new FakeClock()
    const { coordinator } = testCoordinator({
      clock,
      waitForEndpoints: async () => ({ slicesAtStart: 1, mode: 'watch' as const }),
      config: { settleMs: 2_000, timeoutMs: 20_000 },
      recordEvent,
    })
    let answered: DrainSummary | undefined
    void coordinator.start('hook').then((s) => (answered = s))
    await clock.advance(1_999)
    const before = answered
    await clock.advance(1)
    return { before, after: answered }
  }
  const throwing = await run(() => {
    throw new Error('recorder broke')
  })
  t.is(throwing.before, undefined)
  t.like(throwing.after, { outcome: 'completed', durationSeconds: 2 })
  const hanging = await run(() => void new Promise(() => {}))
  t.like(hanging.after, { outcome: 'completed', durationSeconds: 2 })
})

test('the finished message reads the summary: quiet settle with its lag, and the grace budget', (t) => {
  const summary: DrainSummary = {
    outcome: 'completed',
    trigger: 'signal',
    startedAt: '2026-01-01T00:00:00.000Z',
    durationSeconds: 6.2,
    deadline: { source: 'grace budget', seconds: 15, killAt: '2026-01-01T00:00:25.000Z' },
    phases: {
      app: { status: 'ok', durationSeconds: 0.01 },
      envoy: { status: 'failed', durationSeconds: 2, error: { name: 'Error', message: 'x' } },
      endpoints: { status: 'ok', durationSeconds: 1.2 },
      settle: { status: 'ok', durationSeconds: 5, mode: 'quiet', endedBy: 'quiet', trafficLagSeconds: 4 },
    },
  }
  t.deepEqual(drainFinishedEvent(summary), {
    type: 'Normal',
    reason: 'DrainCompleted',
    message:
      'Drain completed in 6.2s; phases: app ok 0.01s, envoy failed 2s, endpoints ok 1.2s, settle ok 5s (quiet); traffic lag: 4s; deadline: grace budget 15s',
  })
})
