import test from 'ava'
import type { EndpointMode, PodIdentity } from '../src/config.ts'
import { UpstreamError } from '../src/errors.ts'
import { waitForEndpointRemoval, WATCH_FAILURES_BEFORE_POLL } from '../src/kube/endpoint-wait.ts'
import { captureLog } from './helpers/capture-log.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { endpointSlice, READY, TERMINATING, TERMINATING_PUBLISHED } from '../sim/fakes/fixtures.ts'
import { createMemoryKube } from './helpers/memory-kube.ts'

const pod: PodIdentity = { name: 'web-1', namespace: 'default', uid: 'uid-1', ips: ['10.0.0.1', 'fd00::1'] }
const me = { ip: '10.0.0.1', podName: 'web-1', uid: 'uid-1' }
const me6 = { ip: 'fd00::1', podName: 'web-1', uid: 'uid-1' }
const other = { ip: '10.0.0.2', podName: 'web-2', uid: 'uid-2', ...READY }

function setup(mode: EndpointMode = 'watch') {
  const clock = new FakeClock()
  const kube = createMemoryKube()
  const log = captureLog()
  const controller = new AbortController()
  let settled: 'pending' | 'resolved' | 'rejected' = 'pending'
  const start = () => {
    const promise = waitForEndpointRemoval(
      { kube: kube.client, clock, log, pod, mode, pollIntervalMs: 1_000, random: () => 0.5 },
      controller.signal,
    )
    promise.then(
      () => (settled = 'resolved'),
      () => (settled = 'rejected'),
    )
    return promise
  }
  return {
    clock,
    kube,
    log,
    controller,
    start,
    get settled() {
      return settled
    },
  }
}

test('a pod in no slice at the start has nothing to wait for', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [other] }))
  const result = await h.start()
  t.is(result.slicesAtStart, 0)
  t.deepEqual(
    h.kube.calls.map((c) => c.verb),
    ['list'],
  )
})

test('the wait ends only after the endpoint leaves every slice that held it (dual-stack, two Services)', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-v4', service: 'web', endpoints: [{ ...me, ...READY }, other] }))
  h.kube.upsert(endpointSlice({ name: 'web-v6', service: 'web', addressType: 'IPv6', endpoints: [{ ...me6, ...READY }] }))
  h.kube.upsert(endpointSlice({ name: 'admin-aaaaa', service: 'admin', endpoints: [{ ...me, ...READY }] }))
  const waiting = h.start()
  await h.clock.settle()
  t.is(h.kube.watching, 1)

  h.kube.upsert(endpointSlice({ name: 'web-v4', service: 'web', endpoints: [{ ...me, ...TERMINATING }, other] }))
  await h.clock.settle()
  h.kube.upsert(endpointSlice({ name: 'web-v6', service: 'web', addressType: 'IPv6', endpoints: [{ ...me6, ...TERMINATING }] }))
  await h.clock.settle()
  t.is(h.settled, 'pending', 'the admin Service still routes to the pod')

  h.kube.upsert(endpointSlice({ name: 'admin-aaaaa', service: 'admin', endpoints: [] }))
  const result = await waiting
  t.is(result.slicesAtStart, 3)
  t.is(result.mode, 'watch')
})

test('the watch is narrowed to the Services that route to the pod', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', service: 'web', endpoints: [{ ...me, ...READY }] }))
  h.kube.upsert(endpointSlice({ name: 'admin-aaaaa', service: 'admin', endpoints: [{ ...me, ...READY }] }))
  h.kube.upsert(endpointSlice({ name: 'other-aaaaa', service: 'other', endpoints: [other] }))
  void h.start()
  await h.clock.settle()
  t.is(h.kube.calls[1]?.labelSelector, 'kubernetes.io/service-name in (admin,web)')
  h.controller.abort()
})

test('removal by deleting the slice ends the wait', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...READY }] }))
  const waiting = h.start()
  await h.clock.settle()
  h.kube.remove('web-aaaaa')
  t.is((await waiting).slicesAtStart, 1)
})

test('removal of the endpoint from the slice ends the wait', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...READY }, other] }))
  const waiting = h.start()
  await h.clock.settle()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [other] }))
  await t.notThrowsAsync(waiting)
})

test('a slice whose endpoints become null holds nothing', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...READY }] }))
  const waiting = h.start()
  await h.clock.settle()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: null }))
  await t.notThrowsAsync(waiting)
})

test('an endpoint with an absent ready condition holds the wait until it changes', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me }] }))
  const waiting = h.start()
  await h.clock.settle()
  h.kube.bookmark()
  await h.clock.settle()
  t.is(h.settled, 'pending')
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ready: false }] }))
  await t.notThrowsAsync(waiting)
})

test('ready:true with terminating:true releases the wait and is logged once', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...READY }] }))
  const waiting = h.start()
  await h.clock.settle()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...TERMINATING_PUBLISHED }] }))
  await waiting
  t.is(h.log.events().filter((e) => e === 'endpoint_terminating_but_ready').length, 1)
})

test('a bookmark does not change the state but moves the resourceVersion the next watch starts from', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...READY }] }))
  void h.start()
  await h.clock.settle()
  h.kube.bookmark()
  await h.clock.settle()
  h.kube.closeWatches()
  await h.clock.settle()
  const watches = h.kube.calls.filter((c) => c.verb === 'watch')
  t.is(watches.length, 2)
  t.true(Number(watches[1]!.resourceVersion) > Number(watches[0]!.resourceVersion))
  t.is(h.settled, 'pending')
  h.controller.abort()
})

test('a 410 ERROR event makes the wait list again and watch from the new resourceVersion', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...READY }] }))
  const waiting = h.start()
  await h.clock.settle()
  h.kube.expire()
  await h.clock.settle()
  t.deepEqual(
    h.kube.calls.map((c) => c.verb),
    ['list', 'watch', 'list', 'watch'],
  )
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...TERMINATING }] }))
  await t.notThrowsAsync(waiting)
  t.true(h.log.events().includes('endpoint_watch_expired'))
})

test('a server that expires every watch right after a relist is backed off from, not hammered', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...READY }] }))
  void h.start()
  await h.clock.settle()
  for (let i = 0; i < 5; i++) h.kube.expireNextWatch()
  h.kube.expire()
  await h.clock.settle(50)
  const requests = h.kube.calls.length
  t.true(requests <= 6, `${requests} requests before any time passed`)
  await h.clock.advance(10_000)
  t.true(h.log.events().includes('endpoint_watch_abandoned'), 'falls back to polling')
  h.controller.abort()
})

test('a change missed while relisting is seen in the new list', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...READY }] }))
  const waiting = h.start()
  await h.clock.settle()
  h.kube.expire()
  // The endpoint goes away while the watch is gone: only the relist can see it.
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [] }))
  await t.notThrowsAsync(waiting)
  // Seen by the second LIST, with no watch after it: not replayed by a watch resumed from the expired version.
  t.deepEqual(
    h.kube.calls.map((c) => c.verb),
    ['list', 'watch', 'list'],
  )
})

test('a broken watch stream is retried from the last resourceVersion after a backoff', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...READY }] }))
  void h.start()
  await h.clock.settle()
  h.kube.breakWatches()
  await h.clock.settle()
  t.is(h.kube.calls.filter((c) => c.verb === 'watch').length, 1, 'no retry before the backoff')
  await h.clock.advance(1_000)
  t.is(h.kube.calls.filter((c) => c.verb === 'watch').length, 2)
  t.is(h.kube.calls.filter((c) => c.verb === 'list').length, 1, 'a broken stream needs no relist')
  h.controller.abort()
})

test(`after ${WATCH_FAILURES_BEFORE_POLL} failed watches in a row the wait falls back to polling`, async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...READY }] }))
  for (let i = 0; i < WATCH_FAILURES_BEFORE_POLL; i++) h.kube.failNextWatch()
  const waiting = h.start()
  await h.clock.advance(10_000)
  t.true(h.log.events().includes('endpoint_watch_abandoned'))
  const listsBefore = h.kube.calls.filter((c) => c.verb === 'list').length
  await h.clock.advance(3_000)
  t.true(h.kube.calls.filter((c) => c.verb === 'list').length >= listsBefore + 2, 'polls every interval')
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...TERMINATING }] }))
  await h.clock.advance(1_000)
  t.is((await waiting).mode, 'poll')
})

test('poll mode lists every DRAIN_POLL_INTERVAL and never watches', async (t) => {
  const h = setup('poll')
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...READY }] }))
  const waiting = h.start()
  await h.clock.advance(2_500)
  t.deepEqual(
    h.kube.calls.map((c) => c.verb),
    ['list', 'list', 'list'],
  )
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...TERMINATING }] }))
  t.is(h.settled, 'pending', 'not seen before the next poll')
  await h.clock.advance(500)
  t.is((await waiting).mode, 'poll')
})

test('a failing first LIST is retried, honouring Retry-After', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...TERMINATING }] }))
  h.kube.failNextList(new UpstreamError('LIST endpointslices', { status: 429, retryAfterMs: 3_000, message: 'Too many requests' }))
  const waiting = h.start()
  await h.clock.advance(2_900)
  t.is(h.kube.calls.length, 1, 'waits out Retry-After')
  await h.clock.advance(100)
  await t.notThrowsAsync(waiting)
  t.is(h.kube.calls.length, 2)
})

test('the wait never ends on its own while the endpoint stays ready: only its signal stops it', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ...me, ...READY }] }))
  const waiting = h.start()
  await h.clock.advance(600_000)
  t.is(h.settled, 'pending')
  h.controller.abort(new Error('deadline'))
  await t.throwsAsync(waiting, { message: 'deadline' })
})

test('with one slice routing to the pod, the watch asks for that slice by name', async (t) => {
  const h = setup()
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', service: 'web', endpoints: [{ ...me, ...READY }, other] }))
  h.kube.upsert(endpointSlice({ name: 'web-bbbbb', service: 'web', endpoints: [other] }))
  void h.start()
  await h.clock.settle()
  const watch = h.kube.calls.find((c) => c.verb === 'watch')
  t.is(watch?.fieldSelector, 'metadata.name=web-aaaaa')
  t.is(watch?.labelSelector, undefined)
  h.controller.abort()
})

test('polling after the first LIST asks only for the Services that route to the pod', async (t) => {
  const h = setup('poll')
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', service: 'web', endpoints: [{ ...me, ...READY }] }))
  void h.start()
  await h.clock.advance(1_000)
  t.deepEqual(
    h.kube.calls.map((c) => c.labelSelector),
    [undefined, 'kubernetes.io/service-name in (web)'],
  )
  h.controller.abort()
})

test("a LIST narrowed to the pod's Services does not declare slices of other Services gone", async (t) => {
  const h = setup('poll')
  h.kube.upsert(endpointSlice({ name: 'web-aaaaa', service: 'web', endpoints: [{ ...me, ...READY }] }))
  h.kube.upsert(endpointSlice({ name: 'admin-aaaaa', service: 'admin', endpoints: [{ ...me, ...TERMINATING }] }))
  void h.start()
  await h.clock.advance(1_000)
  t.deepEqual(
    h.kube.calls.map((c) => c.labelSelector),
    [undefined, 'kubernetes.io/service-name in (web)'],
  )
  t.false(h.log.lines.some((l) => l.event === 'endpoint_changed' && l.slice === 'admin-aaaaa' && l.to === 'absent'))
  h.controller.abort()
})
