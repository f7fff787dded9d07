import { readFileSync } from 'node:fs'
import test from 'ava'
import { systemClock } from '../src/clock.ts'
import type { DrainSummary } from '../src/drain.ts'
import { type PodDeletion, budgetedHoldMs } from '../src/drain-deadline.ts'
import { UpstreamError } from '../src/errors.ts'
import { readPodDeletion } from '../src/kube/pod.ts'
import { staticToken } from '../src/kube/token.ts'
import { createFetch } from '../src/transport.ts'
import { testCoordinator } from './helpers/coordinator.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { startFakeKube } from '../sim/fakes/fake-kube.ts'

const never = new AbortController().signal

// ---- the budget, pure ----

test('the hold leaves DRAIN_APP_RESERVE before the deletionTimestamp, and never exceeds DRAIN_TIMEOUT', (t) => {
  const startedAtMs = Date.parse('2026-11-26T10:00:00Z')
  const at = (s: number) => startedAtMs + s * 1_000
  t.is(
    budgetedHoldMs({ startedAtMs, killAtMs: at(30), reserveMs: 10_000, timeoutMs: 20_000 }),
    20_000,
    'default 30 s grace: 20 s hold, 10 s for the app',
  )
  t.is(budgetedHoldMs({ startedAtMs, killAtMs: at(25), reserveMs: 10_000, timeoutMs: 20_000 }), 15_000, 'a shorter budget wins')
  t.is(
    budgetedHoldMs({ startedAtMs, killAtMs: at(120), reserveMs: 10_000, timeoutMs: 20_000 }),
    20_000,
    'DRAIN_TIMEOUT stays the upper bound',
  )
  t.is(budgetedHoldMs({ startedAtMs, killAtMs: at(5), reserveMs: 10_000, timeoutMs: 20_000 }), 0, 'a budget already spent: no hold at all')
})

// ---- the drain on the fake clock ----

/** The fake clock's wall time at 0, where every drain here starts. */
const EPOCH = Date.parse('2026-01-01T00:00:00Z')
const killAt = (s: number) => new Date(EPOCH + s * 1_000)
/** The pod as the API shows it when its grace period is not given (older servers, hand-made objects). */
const deletedAt = (s: number) => ({ deletionTimestamp: killAt(s) })

function drain(
  readDeletion: ((signal: AbortSignal, clock: FakeClock) => Promise<PodDeletion | undefined>) | undefined,
  { timeoutMs = 20_000, reserveMs = 10_000 } = {},
) {
  const clock = new FakeClock()
  assertEpoch(clock)
  const { coordinator, log } = testCoordinator({
    clock,
    // An endpoint that never leaves: only a deadline ends this drain.
    waitForEndpoints: (signal) =>
      new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })),
    readDeletion: readDeletion === undefined ? undefined : (signal) => readDeletion(signal, clock),
    config: { timeoutMs, appReserveMs: reserveMs, settleMs: 1_000 },
  })
  let answered: DrainSummary | undefined
  const answer = coordinator.start('hook').then((s) => (answered = s))
  return { clock, log, answer, answered: () => answered }
}

function assertEpoch(clock: FakeClock) {
  if (clock.wallTime().getTime() !== EPOCH) throw new Error('the fake clock no longer starts at EPOCH')
}

test('a pod deleted with a 25 s grace period is released at 15 s, outcome timeout, and the summary says why', async (t) => {
  const h = drain(async () => deletedAt(25))
  await h.clock.advance(14_999)
  t.is(h.answered(), undefined)
  await h.clock.advance(1)
  await h.answer
  t.like(h.answered(), {
    outcome: 'timeout',
    durationSeconds: 15,
    deadline: { source: 'grace budget', seconds: 15, killAt: '2026-01-01T00:00:25.000Z' },
  })
  t.like(
    h.log.lines.find((l) => l.event === 'drain_deadline'),
    { source: 'grace budget', seconds: 15, reserveMs: 10_000 },
  )
})

test("the grace period counts on this node's own clock from the drain's start: a node clock 30 s ahead changes nothing", async (t) => {
  // deletionTimestamp is the API server's time; this node's wall clock (the fake clock) runs 30 s ahead of it, so
  // compared with it the pod would already be past its kill time and the hold would be 0.
  const h = drain(async () => ({ deletionTimestamp: killAt(25 - 30), gracePeriodSeconds: 25 }))
  await h.clock.advance(14_999)
  t.is(h.answered(), undefined, 'held: 25 s of grace less the 10 s reserve')
  await h.clock.advance(1)
  await h.answer
  t.like(h.answered(), {
    outcome: 'timeout',
    durationSeconds: 15,
    deadline: { source: 'grace budget', seconds: 15, killAt: killAt(25).toISOString() },
  })
})

test('a budget that arrives late still counts from the start of the drain', async (t) => {
  const h = drain(async (signal, clock) => {
    await clock.sleep(3_000, signal)
    return deletedAt(25)
  })
  await h.clock.advance(14_999)
  t.is(h.answered(), undefined)
  await h.clock.advance(1)
  await h.answer
  t.like(h.answered(), { durationSeconds: 15, deadline: { source: 'grace budget' } })
})

test('a long grace period keeps DRAIN_TIMEOUT, and the summary still shows the deletion time', async (t) => {
  const h = drain(async () => deletedAt(90))
  await h.clock.advance(20_000)
  await h.answer
  t.like(h.answered(), { durationSeconds: 20, deadline: { source: 'DRAIN_TIMEOUT', seconds: 20 } })
  t.is(h.answered()!.deadline.killAt, killAt(90).toISOString())
})

const fallbacks: Array<[string, ((signal: AbortSignal, clock: FakeClock) => Promise<PodDeletion | undefined>) | undefined, RegExp]> = [
  ['no API server', undefined, /no API server or no POD_NAME/],
  ['no deletionTimestamp (a signal without deletion)', async () => undefined, /no deletionTimestamp/],
  [
    'GET pods forbidden',
    async () => {
      throw new UpstreamError('GET https://api/api/v1/namespaces/shop/pods/web-1', { status: 403, message: 'pods "web-1" is forbidden' })
    },
    /could not be read/,
  ],
  [
    'the API server never answers',
    (signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
    /could not be read/,
  ],
]

for (const [name, read, reason] of fallbacks) {
  test(`${name}: DRAIN_TIMEOUT applies, said once in the log`, async (t) => {
    const h = drain(read)
    await h.clock.advance(19_999)
    t.is(h.answered(), undefined)
    await h.clock.advance(1)
    await h.answer
    t.like(h.answered(), { durationSeconds: 20, deadline: { source: 'DRAIN_TIMEOUT', seconds: 20 } })
    const lines = h.log.lines.filter((l) => l.event === 'grace_budget_unavailable')
    t.is(lines.length, 1)
    t.regex(String(lines[0]!.reason), reason)
    t.is(lines[0]!.deadline, 'DRAIN_TIMEOUT')
  })
}

// ---- the Pod from the (fake) API server ----

async function api(t: import('ava').ExecutionContext) {
  const kube = await startFakeKube({ namespace: 'shop' })
  const fetch = createFetch({ ca: readFileSync(kube.caFile, 'utf8') })
  t.teardown(async () => {
    await fetch.close()
    await kube.close()
  })
  const read = (uid?: string) =>
    readPodDeletion(
      {
        apiUrl: kube.url,
        namespace: 'shop',
        name: 'web-1',
        uid,
        fetch,
        token: staticToken('test-token'),
        clock: systemClock,
        userAgent: 'test',
      },
      never,
    )
  return { kube, read }
}

test('GET pod: deletionTimestamp and deletionGracePeriodSeconds of a pod being deleted', async (t) => {
  const { kube, read } = await api(t)
  kube.setPod({
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: { name: 'web-1', uid: 'uid-1', deletionTimestamp: '2026-11-26T10:00:30Z', deletionGracePeriodSeconds: 30 },
    spec: {},
    status: {},
  })
  t.deepEqual(await read('uid-1'), { deletionTimestamp: new Date('2026-11-26T10:00:30Z'), gracePeriodSeconds: 30 })
  t.is(kube.requests.at(-1)!.path, '/api/v1/namespaces/shop/pods/web-1')
})

test('GET pod: a pod not being deleted has no deletionTimestamp', async (t) => {
  const { kube, read } = await api(t)
  kube.setPod({ kind: 'Pod', apiVersion: 'v1', metadata: { name: 'web-1' } })
  t.deepEqual(await read(), { deletionTimestamp: undefined, gracePeriodSeconds: undefined })
})

test('GET pod: refused (403), malformed, or another pod of the same name are errors that say so', async (t) => {
  const { kube, read } = await api(t)
  kube.setPod({ kind: 'Pod', metadata: { name: 'web-1', deletionTimestamp: 1_764_151_230 } })
  await t.throwsAsync(read(), { code: 'POD_INVALID', message: /not a valid Pod: metadata\.deletionTimestamp/ })
  kube.setPod({ kind: 'Pod', metadata: { name: 'web-1', uid: 'uid-2', deletionTimestamp: '2026-11-26T10:00:30Z' } })
  await t.throwsAsync(read('uid-1'), { code: 'POD_REPLACED' })
  kube.refuseCore('pods')
  const error = await t.throwsAsync(read(), { instanceOf: UpstreamError, message: /status 403.*forbidden/ })
  t.is(error?.status, 403)
})
