import test from 'ava'
import { deadline, systemClock } from '../src/clock.ts'

test("the system clock sleeps, and an aborted sleep rejects with the signal's own reason", async (t) => {
  const started = performance.now()
  await systemClock.sleep(20)
  t.true(performance.now() - started >= 15)
  const controller = new AbortController()
  const reason = new Error('deadline')
  const sleeping = systemClock.sleep(60_000, controller.signal)
  controller.abort(reason)
  t.is(await sleeping.catch((error: unknown) => error), reason)
  await t.throwsAsync(systemClock.sleep(10, AbortSignal.abort(reason)), { is: reason })
})

test('the system clock never wakes before the time asked for has passed on its own now()', async (t) => {
  // Node's timers may fire a millisecond early against performance.now() when armed part-way through a loop turn.
  let early = 0
  for (let i = 0; i < 200; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    const busyUntil = performance.now() + (i % 10) / 5
    while (performance.now() < busyUntil) continue
    const started = systemClock.now()
    await systemClock.sleep(3)
    if (systemClock.now() - started < 3) early++
  }
  t.is(early, 0)
})

test('a sleep longer than the largest timer Node allows still waits instead of firing at once', async (t) => {
  const overflows: string[] = []
  const onWarning = (warning: Error) => warning.name === 'TimeoutOverflowWarning' && overflows.push(warning.message)
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))
  const controller = new AbortController()
  let woke = false
  const sleeping = systemClock.sleep(30 * 24 * 3_600_000, controller.signal).then(
    () => (woke = true),
    () => {},
  )
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.false(woke)
  t.deepEqual(overflows, [], 'no timer was armed past the ceiling (Node would fire it after 1 ms)')
  controller.abort(new Error('done'))
  await sleeping
})

test('a deadline aborts with its reason, follows its parent, and a cancelled one never fires', async (t) => {
  const fired = deadline(systemClock, 10, 'late')
  await new Promise((resolve) => fired.signal.addEventListener('abort', resolve))
  t.is(fired.signal.reason, 'late')

  const parent = new AbortController()
  const child = deadline(systemClock, 60_000, 'late', parent.signal)
  parent.abort('parent gone')
  t.is(child.signal.reason, 'parent gone')
  child.cancel()

  const cancelled = deadline(systemClock, 10, 'late')
  cancelled.cancel()
  await systemClock.sleep(40)
  t.false(cancelled.signal.aborted)
})
