/**
 * The endpoint wait: resolves once no EndpointSlice in the namespace still routes traffic to this pod (its
 * endpoint is gone, `ready: false`, ready-but-terminating, or its slice was deleted). Watch mode lists once and
 * then follows a watch, listing again after a 410 and falling back to polling after repeated failures; poll mode
 * lists every interval. Never resolves on its own otherwise: the caller's signal (the drain deadline) ends it.
 */
import type { Clock } from '../clock.ts'
import type { EndpointMode, PodIdentity } from '../config.ts'
import { UpstreamError, describeError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { isExpired, type KubeClient, WatchIdleError } from './client.ts'
import { type EndpointState, endpointStateIn, holdsTraffic, serviceNameOf } from './endpoint-slice.ts'
import { SERVICE_NAME_LABEL, type EndpointSlice } from './types.ts'

export type EndpointWaitDeps = {
  kube: KubeClient
  clock: Clock
  log: Logger
  pod: PodIdentity
  mode: EndpointMode
  pollIntervalMs: number
  random?: () => number
  /** A watch silent this long is abandoned and replaced by a fresh LIST and WATCH (default WATCH_IDLE_MS). */
  watchIdleMs?: number
}

export type EndpointWaitResult = {
  /** Slices that routed to the pod when the wait began. */
  slicesAtStart: number
  /** How the wait ended up watching: the mode asked for, or poll after the watch kept failing. */
  mode: EndpointMode
}

/** Consecutive watch failures after which the wait polls instead. */
export const WATCH_FAILURES_BEFORE_POLL = 3
const BACKOFF_BASE_MS = 200
const BACKOFF_MAX_MS = 5_000
const WATCH_TIMEOUT_SECONDS = 60
/** A watch that closes this fast without an event is a failure (client-go's "very short watch"). */
const VERY_SHORT_WATCH_MS = 1_000
/**
 * A watch that delivers nothing for this long is replaced by a LIST (of the pod's Services) and a new WATCH. The
 * API server sends a bookmark only about once a minute, so a healthy but quiet watch is renewed too: two requests
 * per interval while a drain waits (a 20 s wait costs at most 4), in exchange for never sitting on a stalled
 * connection until the deadline.
 */
const WATCH_IDLE_MS = 10_000

export async function waitForEndpointRemoval(deps: EndpointWaitDeps, signal: AbortSignal): Promise<EndpointWaitResult> {
  const tracker = new SliceTracker(deps)
  /** LIST everything, or only the slices of `services`. */
  const list = async (services?: readonly string[]) => {
    const labelSelector = services === undefined ? undefined : selectorFor(services)
    // Only slices that mention the pod are kept: a namespace with thousands of slices costs one page of memory.
    const result = await deps.kube.listEndpointSlices({ labelSelector, keep: (slice) => endpointStateIn(slice, deps.pod) !== 'absent' }, signal)
    tracker.reset(result.items, services)
    return result.resourceVersion
  }
  const resourceVersion = await withRetries(deps, signal, () => list())
  const slicesAtStart = tracker.holdingCount
  deps.log.info('endpoints_listed', { holding: tracker.describe(), resourceVersion })
  if (tracker.done) return { slicesAtStart, mode: deps.mode }

  // Later LISTs ask only for the Services that route to the pod.
  const services = tracker.holdingServices()
  if (deps.mode === 'watch') {
    const outcome = await followWatch(deps, signal, tracker, resourceVersion, () => list(services))
    if (outcome === 'done') return { slicesAtStart, mode: 'watch' }
    deps.log.warn('endpoint_watch_abandoned', { reason: `${WATCH_FAILURES_BEFORE_POLL} consecutive failures`, fallback: 'poll', pollIntervalMs: deps.pollIntervalMs })
  }
  for (;;) {
    await deps.clock.sleep(deps.pollIntervalMs, signal)
    await withRetries(deps, signal, () => list(services))
    if (tracker.done) return { slicesAtStart, mode: 'poll' }
  }
}

async function followWatch(
  deps: EndpointWaitDeps,
  signal: AbortSignal,
  tracker: SliceTracker,
  startVersion: string,
  relist: () => Promise<string>,
): Promise<'done' | 'failing'> {
  let resourceVersion: string | undefined = startVersion
  let failures = 0
  /** True from a relist until the next event: a 410 then means the server keeps losing our place. */
  let relisted = false
  const idleTimeoutMs = deps.watchIdleMs ?? WATCH_IDLE_MS
  while (failures < WATCH_FAILURES_BEFORE_POLL) {
    try {
      if (resourceVersion === undefined) {
        resourceVersion = await relist()
        relisted = true
        if (tracker.done) return 'done'
      }
      const startedAt = deps.clock.now()
      let events = 0
      const watchOptions: Parameters<KubeClient['watchEndpointSlices']>[0] = { resourceVersion, ...tracker.watchSelector(), timeoutSeconds: WATCH_TIMEOUT_SECONDS, idleTimeoutMs }
      for await (const event of deps.kube.watchEndpointSlices(watchOptions, signal)) {
        if (event.type === 'ERROR') {
          const status = event.object
          throw new UpstreamError('WATCH endpointslices', {
            ...(status.code === undefined ? {} : { status: status.code }),
            ...(status.reason === undefined ? {} : { reason: status.reason }),
            message: `ERROR event: ${status.message ?? 'no message'}`,
          })
        }
        if (event.type === 'ADDED' || event.type === 'MODIFIED') tracker.apply(event.object)
        else if (event.type === 'DELETED') tracker.remove(event.object)
        // A BOOKMARK is an empty object; only its resourceVersion counts.
        resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion
        events++
        relisted = false
        failures = 0
        if (tracker.done) return 'done'
      }
      if (events === 0 && deps.clock.now() - startedAt < VERY_SHORT_WATCH_MS) {
        throw new UpstreamError('WATCH endpointslices', { message: 'stream closed at once without an event' })
      }
      deps.log.debug('endpoint_watch_closed', { resourceVersion, events })
    } catch (error) {
      if (signal.aborted) throw signal.reason
      if (error instanceof WatchIdleError) {
        // Not a failure: a quiet watch and a stalled one look the same. A (narrowed) LIST tells the truth either
        // way, and keeps a path that stalls every watch (a buffering proxy) from holding the hook to the deadline.
        deps.log.info('endpoint_watch_idle', { resourceVersion, idleMs: idleTimeoutMs, next: 'list and watch again' })
        resourceVersion = undefined
        continue
      }
      if (isExpired(error)) {
        // 410: our resourceVersion left the server's window: list again and watch from there. Only a 410 right
        // after a fresh list counts as a failure, so a server that keeps expiring us cannot spin the loop.
        deps.log.info('endpoint_watch_expired', { resourceVersion: resourceVersion ?? null, error })
        resourceVersion = undefined
        if (!relisted) continue
      }
      failures++
      const retryAfterMs = error instanceof UpstreamError ? error.retryAfterMs : undefined
      deps.log.warn('endpoint_watch_failed', { attempt: failures, error })
      if (failures < WATCH_FAILURES_BEFORE_POLL) await deps.clock.sleep(backoff(deps, failures, retryAfterMs), signal)
    }
  }
  return 'failing'
}

/** Repeats a LIST until it succeeds or the signal aborts, backing off with jitter and honouring Retry-After. */
async function withRetries<T>(deps: EndpointWaitDeps, signal: AbortSignal, attempt: () => Promise<T>): Promise<T> {
  for (let failures = 1; ; failures++) {
    try {
      return await attempt()
    } catch (error) {
      if (signal.aborted) throw signal.reason
      const retryAfterMs = error instanceof UpstreamError ? error.retryAfterMs : undefined
      deps.log.warn('endpoint_list_failed', { attempt: failures, error: describeError(error), status: error instanceof UpstreamError ? error.status : undefined })
      const wait = deps.mode === 'poll' ? Math.max(deps.pollIntervalMs, retryAfterMs ?? 0) : backoff(deps, failures, retryAfterMs)
      await deps.clock.sleep(wait, signal)
    }
  }
}

/** `kubernetes.io/service-name in (a,b)` */
function selectorFor(services: readonly string[]): string {
  return `${SERVICE_NAME_LABEL} in (${services.join(',')})`
}

/** Exponential backoff with full jitter between half and the whole step; never shorter than Retry-After. */
function backoff(deps: EndpointWaitDeps, failures: number, retryAfterMs: number | undefined): number {
  const step = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (failures - 1))
  const jittered = step * (0.5 + (deps.random ?? Math.random)() / 2)
  return Math.max(jittered, retryAfterMs ?? 0)
}

/**
 * This pod's state in each slice that mentions it. Keeps only those slices, so memory stays small however many
 * slices the namespace has.
 */
class SliceTracker {
  readonly #deps: EndpointWaitDeps
  readonly #states = new Map<string, { state: EndpointState; service: string | undefined }>()
  readonly #loggedTerminatingReady = new Set<string>()

  constructor(deps: EndpointWaitDeps) {
    this.#deps = deps
  }

  get done(): boolean {
    return this.holdingCount === 0
  }

  get holdingCount(): number {
    let count = 0
    for (const { state } of this.#states.values()) if (holdsTraffic(state)) count++
    return count
  }

  /** Takes a LIST as the truth for the slices it covered: all of them, or only those of `services`. */
  reset(items: EndpointSlice[], services?: readonly string[]): void {
    const seen = new Set<string>()
    for (const slice of items) seen.add(this.apply(slice))
    for (const [name, { service }] of [...this.#states]) {
      if (seen.has(name)) continue
      if (services !== undefined && (service === undefined || !services.includes(service))) continue
      this.#set(name, 'absent', undefined, 'listed without it')
    }
  }

  apply(slice: EndpointSlice): string {
    const name = slice.metadata?.name ?? '<unnamed>'
    this.#set(name, endpointStateIn(slice, this.#deps.pod), serviceNameOf(slice), 'changed')
    return name
  }

  remove(slice: EndpointSlice): void {
    const name = slice.metadata?.name ?? '<unnamed>'
    this.#set(name, 'absent', undefined, 'slice deleted')
  }

  /**
   * What a watch needs to see: the one slice that still routes to the pod, by name (each sidecar then receives
   * only its own slice's changes, not every change to a large Service), or else its Services' slices.
   */
  watchSelector(): { fieldSelector?: string; labelSelector?: string } {
    const holding = [...this.#states].filter(([, { state }]) => holdsTraffic(state))
    if (holding.length === 1) return { fieldSelector: `metadata.name=${holding[0]![0]}` }
    const services = this.holdingServices()
    return services === undefined ? {} : { labelSelector: selectorFor(services) }
  }

  /** The Services that route to the pod, if every slice that does is labelled with its Service. */
  holdingServices(): string[] | undefined {
    const services = new Set<string>()
    for (const { state, service } of this.#states.values()) {
      if (!holdsTraffic(state)) continue
      if (service === undefined) return undefined
      services.add(service)
    }
    return services.size === 0 ? undefined : [...services].sort()
  }

  describe(): Record<string, EndpointState> {
    return Object.fromEntries([...this.#states].map(([name, { state }]) => [name, state]))
  }

  #set(name: string, state: EndpointState, service: string | undefined, why: string): void {
    const before = this.#states.get(name)?.state ?? 'absent'
    if (state === 'absent') this.#states.delete(name)
    else this.#states.set(name, { state, service })
    if (before === state) return
    this.#deps.log.info('endpoint_changed', { slice: name, from: before, to: state, why })
    if (state === 'terminating-ready' && !this.#loggedTerminatingReady.has(name)) {
      this.#loggedTerminatingReady.add(name)
      this.#deps.log.info('endpoint_terminating_but_ready', {
        slice: name,
        note: 'ready:true with terminating:true (publishNotReadyAddresses); counted as removed',
      })
    }
  }
}
