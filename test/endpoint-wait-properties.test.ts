/**
 * The endpoint wait end to end under arbitrary API answers (fast-check, fake clock, in-memory API): slices that
 * are valid, valid with extra fields, wrong in one field (wrong types, nulls, values nested thousands of levels
 * deep), or not slices at all, stored and changed in any order, mixed with garbage watch events, 410s, closed
 * and broken watches and failed LISTs. The invariant: the wait resolves only if, at some moment, the valid
 * objects proved the pod gone from every slice (a slice that is not valid holds it), and it never throws but the
 * caller's abort. The model below decides "valid" from how each object was built, not with the code under test.
 */
import test from 'ava'
import fc from 'fast-check'
import { waitForEndpointRemoval } from '../src/kube/endpoint-wait.ts'
import type { EndpointMode, EndpointSlice, PodIdentity } from '../src/kube/types.ts'
import { captureLog } from './helpers/capture-log.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { endpointSlice, READY, TERMINATING, TERMINATING_PUBLISHED } from '../sim/fakes/fixtures.ts'
import { createMemoryKube } from './helpers/memory-kube.ts'

const POD: PodIdentity = { name: 'me', namespace: 'default', uid: 'uid-me', ips: ['10.0.0.1'] }
const NAMES = ['web-aaaaa', 'web-bbbbb', 'api-ccccc'] as const
type State = 'ready' | 'not-ready' | 'terminating-ready' | 'absent'
const CONDITIONS = { ready: READY, 'not-ready': TERMINATING, 'terminating-ready': TERMINATING_PUBLISHED } as const

/**
 * An array nested `depth` levels deep: enough to overflow any recursive walk (a logger, a sort, a clone). Kept as
 * a marker until it is stored, so fast-check can still print a counterexample.
 */
class Deep {
  readonly depth: number
  constructor(depth: number) {
    this.depth = depth
  }
  [fc.toStringMethod]() {
    return `deep(${this.depth})`
  }
}
const deepValue = fc.integer({ min: 2_000, max: 20_000 }).map((depth) => new Deep(depth))

function materialize(value: unknown): unknown {
  if (value instanceof Deep) {
    let nested: unknown = 'x'
    for (let i = 0; i < value.depth; i++) nested = [nested]
    return nested
  }
  if (Array.isArray(value)) return value.map(materialize)
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, materialize(v)]))
  return value
}

function validSlice(name: string, state: State, extra: Record<string, unknown>): EndpointSlice {
  const service = name.slice(0, 3)
  const others = [{ ip: '10.0.0.9', podName: 'other', uid: 'uid-other', ...READY }]
  const mine = state === 'absent' ? [] : [{ ip: '10.0.0.1', podName: 'me', uid: 'uid-me', ...CONDITIONS[state] }]
  const slice = endpointSlice({ name, service, endpoints: [...mine, ...others] })
  // Fields the API may add one day: never a reason to distrust a slice.
  return { ...extra, ...slice, endpoints: slice.endpoints!.map((e) => ({ ...extra, ...e })) } as EndpointSlice
}
const extraFields = fc.dictionary(
  fc.string({ minLength: 1, maxLength: 8 }).map((k) => `x-${k}`),
  fc.jsonValue({ maxDepth: 2 }),
  { maxKeys: 3 },
)

/** One field of a valid slice replaced by a value of the wrong type for it: the slice is invalid by construction. */
const WRONG: Array<{ path: Array<string | number>; wrong: (value: unknown) => boolean }> = [
  { path: ['endpoints'], wrong: (v) => v != null && !Array.isArray(v) },
  { path: ['metadata'], wrong: (v) => typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Deep },
  { path: ['metadata', 'name'], wrong: (v) => typeof v !== 'string' },
  { path: ['metadata', 'labels'], wrong: (v) => v != null && (typeof v !== 'object' || v instanceof Deep || Array.isArray(v)) },
  { path: ['metadata', 'resourceVersion'], wrong: (v) => v != null && typeof v !== 'string' },
  { path: ['endpoints', 0], wrong: (v) => typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Deep },
  { path: ['endpoints', 0, 'conditions', 'ready'], wrong: (v) => v != null && typeof v !== 'boolean' },
  { path: ['endpoints', 0, 'conditions'], wrong: (v) => v != null && (typeof v !== 'object' || Array.isArray(v) || v instanceof Deep) },
  { path: ['endpoints', 0, 'addresses'], wrong: (v) => v != null && !Array.isArray(v) },
  { path: ['endpoints', 0, 'targetRef', 'uid'], wrong: (v) => v != null && typeof v !== 'string' },
]
const anyValue = fc.oneof(fc.anything({ maxDepth: 3 }), deepValue, fc.constantFrom('x', 0, true, [], {}, [1], 'Pod'))

function replaced(slice: EndpointSlice, path: Array<string | number>, value: unknown): unknown {
  const copy = structuredClone(slice) as unknown as Record<string | number, unknown>
  let at: Record<string | number, unknown> = copy
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>
  at[path.at(-1)!] = value
  return copy
}

/** Not a slice at all: no metadata object. */
const notASlice = fc.anything({ maxDepth: 3 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v) || !('metadata' in v))

type Stored = { kind: 'valid'; state: State; value: EndpointSlice } | { kind: 'invalid'; value: unknown }

const stored = (name: string): fc.Arbitrary<Stored> =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc
        .record({ state: fc.constantFrom<State>('ready', 'not-ready', 'terminating-ready', 'absent'), extra: extraFields })
        .map(({ state, extra }) => ({ kind: 'valid' as const, state, value: validSlice(name, state, extra) })),
    },
    {
      weight: 3,
      arbitrary: fc
        .record({ state: fc.constantFrom<State>('ready', 'not-ready', 'absent'), field: fc.constantFrom(...WRONG), value: anyValue })
        .filter(({ field, value }) => field.wrong(value))
        .map(({ state, field, value }) => ({
          kind: 'invalid' as const,
          value: replaced(validSlice(name, state === 'absent' ? 'ready' : state, {}), field.path, value),
        })),
    },
    { weight: 1, arbitrary: notASlice.map((value) => ({ kind: 'invalid' as const, value })) },
  )

type Op =
  | { op: 'upsert'; name: string; stored: Stored }
  | { op: 'delete'; name: string }
  | { op: 'garbage-event'; type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'; object: unknown }
  | { op: 'bookmark' | 'expire' | 'close' | 'break' | 'fail-list' }

const name = fc.constantFrom(...NAMES)
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: name.chain((n) => stored(n).map((s) => ({ op: 'upsert' as const, name: n, stored: s }))) },
  { weight: 2, arbitrary: name.map((n) => ({ op: 'delete' as const, name: n })) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('garbage-event' as const),
      type: fc.constantFrom('ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR'),
      object: fc.oneof(
        notASlice,
        deepValue.map((d) => ({ metadata: { resourceVersion: d } })),
        fc.constant({ kind: 'Status', code: 'x' }),
      ),
    }),
  },
  { weight: 1, arbitrary: fc.constantFrom('bookmark', 'expire', 'close', 'break', 'fail-list').map((op) => ({ op }) as Op) },
)

const scenario = fc.record({
  mode: fc.constantFrom<EndpointMode>('watch', 'poll'),
  // The pod is held at the start by at least one slice that is ready or invalid.
  initial: fc
    .array(
      name.chain((n) => stored(n).map((s) => ({ name: n, stored: s }))),
      { minLength: 1, maxLength: 3 },
    )
    .filter((items) => items.some((i) => i.stored.kind === 'invalid' || i.stored.state === 'ready')),
  ops: fc.array(fc.record({ op: opArb, afterMs: fc.constantFrom(0, 50, 700, 3_000, 12_000) }), { maxLength: 8 }),
})

/** Does anything hold the pod, by the model: an invalid object, or a valid slice where the pod is ready? */
const anyHolds = (store: Map<string, Stored>) => [...store.values()].some((s) => s.kind === 'invalid' || s.state === 'ready')

test('the endpoint wait resolves only when the valid objects prove the pod gone, and never throws but the abort', async (t) => {
  await fc.assert(
    fc.asyncProperty(scenario, async ({ mode, initial, ops }) => {
      const clock = new FakeClock()
      const kube = createMemoryKube()
      const log = captureLog()
      const model = new Map<string, Stored>()
      const put = (n: string, s: Stored) => {
        model.set(n, s)
        if (s.kind === 'valid') kube.upsert(s.value)
        else kube.upsertRaw(n, materialize(s.value))
      }
      for (const { name: n, stored: s } of initial) put(n, s)
      let proven = !anyHolds(model)
      const controller = new AbortController()
      const deadline = new Error('deadline')
      const state: { outcome: 'pending' | 'resolved' | { error: unknown } } = { outcome: 'pending' }
      const waiting = waitForEndpointRemoval(
        { kube: kube.client, clock, log, pod: POD, mode, pollIntervalMs: 500, random: () => 0.5 },
        controller.signal,
      ).then(
        () => (state.outcome = 'resolved'),
        (error: unknown) => (state.outcome = { error }),
      )
      await clock.advance(0)
      for (const { op, afterMs } of ops) {
        if (state.outcome !== 'pending') break
        switch (op.op) {
          case 'upsert':
            put(op.name, op.stored)
            break
          case 'delete':
            model.delete(op.name)
            kube.remove(op.name)
            break
          case 'garbage-event':
            kube.emitRaw(op.type, materialize(op.object))
            break
          case 'bookmark':
            kube.bookmark()
            break
          case 'expire':
            kube.expire()
            break
          case 'close':
            kube.closeWatches()
            break
          case 'break':
            kube.breakWatches()
            break
          case 'fail-list':
            kube.failNextList()
            break
        }
        if (!anyHolds(model)) proven = true
        await clock.advance(afterMs)
      }
      await clock.advance(30_000)
      const resolved = state.outcome === 'resolved'
      controller.abort(deadline)
      await waiting
      if (resolved && !proven) throw new Error(`resolved without evidence; log: ${log.events().join(', ')}`)
      const { outcome } = state
      if (typeof outcome === 'object' && outcome.error !== deadline) throw new Error(`threw ${String(outcome.error)}`)
      // No line may carry a raw value: every line stays short whatever the objects held.
      const longest = Math.max(0, ...log.lines.map((l) => JSON.stringify(l).length))
      if (longest > 4_000) throw new Error(`a log line of ${longest} characters`)
      // Every invalid object that held the pod was named in one line saying what was wrong.
      for (const line of log.lines.filter((l) => l.event === 'endpoint_slice_invalid')) {
        if (typeof line.slice !== 'string' || typeof line.problem !== 'string' || line.problem === '')
          throw new Error(`bad line ${JSON.stringify(line)}`)
      }
    }),
    { numRuns: 150 },
  )
  t.pass()
})

test('a slice whose endpoints is a string holds the hook, is logged once with its name and problem, and a valid version releases it', async (t) => {
  const clock = new FakeClock()
  const kube = createMemoryKube()
  const log = captureLog()
  kube.upsertRaw('web-aaaaa', { ...validSlice('web-aaaaa', 'ready', {}), endpoints: 'x' })
  const controller = new AbortController()
  let resolved = false
  const waiting = waitForEndpointRemoval(
    { kube: kube.client, clock, log, pod: POD, mode: 'watch', pollIntervalMs: 500, random: () => 0.5 },
    controller.signal,
  ).then(() => (resolved = true))
  await clock.advance(5_000)
  t.false(resolved, 'an unreadable slice is not "absent"')
  const lines = log.lines.filter((l) => l.event === 'endpoint_slice_invalid')
  t.is(lines.length, 1)
  t.like(lines[0], { level: 'warn', slice: 'web-aaaaa' })
  t.regex(String(lines[0]!.problem), /^endpoints: expected Array, got "x"/)
  kube.upsert(validSlice('web-aaaaa', 'not-ready', {}))
  await clock.advance(100)
  await waiting
  t.true(resolved)
  t.like(
    log.lines.find((l) => l.event === 'endpoint_changed' && l.from === 'invalid'),
    { slice: 'web-aaaaa', to: 'not-ready' },
  )
})

test('an unexpected exception inside the wait (here the logger overflowing its stack) is logged and the wait starts over; it never ends the wait', async (t) => {
  const clock = new FakeClock()
  const kube = createMemoryKube()
  const captured = captureLog()
  let thrown = 0
  // The first `endpoints_listed` line throws, as a logger walking a value nested too deep would.
  const log = {
    ...captured,
    info(event: string, fields?: Record<string, unknown>) {
      if (event === 'endpoints_listed' && thrown++ === 0) throw new RangeError('Maximum call stack size exceeded')
      captured.info(event, fields)
    },
  }
  kube.upsert(validSlice('web-aaaaa', 'ready', {}))
  const controller = new AbortController()
  let outcome: string = 'pending'
  const waiting = waitForEndpointRemoval(
    { kube: kube.client, clock, log, pod: POD, mode: 'watch', pollIntervalMs: 500, random: () => 0.5 },
    controller.signal,
  ).then(
    () => (outcome = 'resolved'),
    (error: unknown) => (outcome = `rejected: ${String(error)}`),
  )
  await clock.advance(2_000)
  t.is(outcome, 'pending', 'still waiting: an exception is not evidence, and not the end of the wait')
  t.like(
    captured.lines.find((l) => l.event === 'endpoint_wait_error'),
    { level: 'error', error: { name: 'RangeError', message: 'Maximum call stack size exceeded' } },
  )
  t.true(
    captured.lines.some((l) => l.event === 'endpoints_listed'),
    'started over and listed again',
  )
  kube.upsert(validSlice('web-aaaaa', 'not-ready', {}))
  await clock.advance(100)
  await waiting
  t.is(outcome, 'resolved')
})
