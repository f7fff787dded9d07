import { EventEmitter } from 'node:events'
import test from 'ava'
import { installSignalHandlers } from '../src/signals.ts'
import { testCoordinator } from './helpers/coordinator.ts'
import { FakeClock } from './helpers/fake-clock.ts'

function harness({ finalScrape = async () => {} }: { finalScrape?: () => Promise<void> } = {}) {
  const clock = new FakeClock()
  const { coordinator, log } = testCoordinator({ clock, config: { settleMs: 2_000, timeoutMs: 10_000 } })
  const emitter = new EventEmitter()
  const exits: number[] = []
  const order: string[] = []
  let serverClosed = false
  installSignalHandlers(emitter, {
    coordinator,
    log,
    beforeExit: async () => {
      order.push('final scrape')
      await finalScrape()
    },
    closeServer: async () => {
      order.push('close server')
      serverClosed = true
    },
    exit: (code) => exits.push(code),
  })
  return { clock, log, coordinator, emitter, exits, order, serverClosed: () => serverClosed }
}

test('SIGTERM starts a drain and exits 0 only once it is done and the server has closed', async (t) => {
  const h = harness()
  h.emitter.emit('SIGTERM')
  t.is(h.coordinator.state, 'draining')
  await h.clock.advance(1_999)
  t.deepEqual(h.exits, [], 'keeps serving during the drain')
  await h.clock.advance(1)
  t.true(h.serverClosed())
  t.deepEqual(h.order, ['final scrape', 'close server'], 'the final scrape is waited for before the server closes')
  t.deepEqual(h.exits, [0])
  t.is(h.coordinator.summary?.trigger, 'signal')
})

test('SIGTERM during a hook-started drain joins it', async (t) => {
  const h = harness()
  const hook = h.coordinator.start('hook')
  await h.clock.advance(500)
  h.emitter.emit('SIGTERM')
  await h.clock.advance(1_500)
  t.is((await hook).trigger, 'hook')
  t.deepEqual(h.exits, [0])
  t.is(h.log.events().filter((e) => e === 'drain_started').length, 1)
})

test('SIGINT works like SIGTERM', async (t) => {
  const h = harness()
  h.emitter.emit('SIGINT')
  await h.clock.advance(2_000)
  t.deepEqual(h.exits, [0])
})

test('a second signal exits at once', async (t) => {
  const h = harness()
  h.emitter.emit('SIGTERM')
  await h.clock.advance(100)
  h.emitter.emit('SIGTERM')
  t.deepEqual(h.exits, [143])
  t.true(h.log.events().includes('exit_on_second_signal'))
})

test('SIGTERM after the drain finished exits at once with 0', async (t) => {
  const h = harness()
  const hook = h.coordinator.start('hook')
  await h.clock.advance(2_000)
  await hook
  h.emitter.emit('SIGTERM')
  await h.clock.settle()
  t.deepEqual(h.exits, [0])
})

test('a second signal during the final-scrape wait exits 0 at once: the drain itself is over', async (t) => {
  const h = harness({ finalScrape: () => new Promise(() => {}) })
  h.emitter.emit('SIGTERM')
  await h.clock.advance(2_000)
  t.deepEqual(h.order, ['final scrape'])
  t.deepEqual(h.exits, [], 'waiting for the scrape')
  h.emitter.emit('SIGTERM')
  t.deepEqual(h.exits, [0])
})
