import test from 'ava'
import { UpstreamError } from '../src/errors.ts'
import { backoffMs, retry } from '../src/kube/retry.ts'
import { FakeClock } from './helpers/fake-clock.ts'

const policy = { baseMs: 200, maxMs: 5_000 }

test('backoff doubles from the base to the cap, jittered between half and all of each step', (t) => {
  const low = { ...policy, random: () => 0 }
  const high = { ...policy, random: () => 0.999_999 }
  t.deepEqual(
    [1, 2, 3, 4, 5, 6, 7].map((n) => backoffMs(low, n)),
    [100, 200, 400, 800, 1_600, 2_500, 2_500],
  )
  t.deepEqual(
    [1, 2, 3, 6, 50].map((n) => Math.round(backoffMs(high, n))),
    [200, 400, 800, 5_000, 5_000],
  )
})

test('backoff is never shorter than the Retry-After the server sent', (t) => {
  const asked = new UpstreamError('LIST x', { status: 429, retryAfterMs: 3_000 })
  t.is(backoffMs({ ...policy, random: () => 0 }, 1, asked), 3_000)
  t.is(backoffMs({ ...policy, random: () => 0 }, 10, new UpstreamError('LIST x', { status: 429, retryAfterMs: 1_000 })), 2_500)
})

test('retry sleeps the backoff on the injected clock, gives up after `attempts` failures in a row, and progress restarts the count', async (t) => {
  const clock = new FakeClock()
  const calls: number[] = []
  const seen: Array<[number, number]> = []
  let progressOnce = true
  const running = retry(
    { clock, policy: { ...policy, random: () => 0 }, attempts: 3, onFailure: (_e, n, delay) => seen.push([n, delay]) },
    async (progress) => {
      calls.push(clock.now())
      if (calls.length === 2 && progressOnce) {
        progressOnce = false
        progress()
      }
      throw new Error(`fail ${calls.length}`)
    },
  )
  const outcome = running.then(
    () => 'resolved',
    (error: Error) => error.message,
  )
  await clock.advance(10_000)
  // Failure 1 (100 ms), then an attempt that made progress restarts the count: 1 (100 ms), 2 (200 ms), 3: give up.
  t.is(await outcome, 'fail 4')
  t.deepEqual(seen, [
    [1, 100],
    [1, 100],
    [2, 200],
    [3, 0],
  ])
  t.deepEqual(calls, [0, 100, 200, 400])
})

test('retry ends with the signal reason when the caller aborts during a backoff', async (t) => {
  const clock = new FakeClock()
  const controller = new AbortController()
  const reason = new Error('deadline')
  const running = retry({ clock, signal: controller.signal, policy }, async () => {
    throw new Error('down')
  })
  const outcome = running.catch((error: unknown) => error)
  await clock.advance(50)
  controller.abort(reason)
  t.is(await outcome, reason)
})
