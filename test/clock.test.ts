import test from 'ava'
import { deadline, systemClock } from '../src/clock.ts'

test('the system clock sleeps, and an aborted sleep rejects with the signal\'s own reason', async (t) => {
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
