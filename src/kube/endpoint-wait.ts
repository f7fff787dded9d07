/**
 * The endpoint wait: resolves once no EndpointSlice in the namespace still routes traffic to this pod (its
 * endpoint is gone, `ready: false`, ready-but-terminating, or its slice was deleted), as read from well-formed
 * API objects. Watch mode lists once and then follows a watch, listing again after a 410 and falling back to
 * polling after repeated failures; poll mode lists every interval. Never resolves on its own otherwise, and never
 * throws but the caller's abort: any other error, a bug included, is logged and the wait starts over (after a
 * backoff) until the caller's signal (the drain deadline) ends it.
 */
import type { Clock } from '../clock.ts'
import { UpstreamError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { isExpired, KubeInvalidObjectError, type KubeClient, WatchIdleError } from './client.ts'
import { KubeLimitError } from './limits.ts'
import { DEFAULT_BACKOFF, type BackoffPolicy, retry, retryAfterOf } from './retry.ts'
import { selectorFor, SliceTracker } from './slice-tracker.ts'
import type { EndpointMode, PodIdentity } from './types.ts'

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
  const policy = backoffPolicy(deps)
  // The last line of defence for the one promise: nothing but the caller's deadline ends the wait without evidence.
  return retry(
    {
      clock: deps.clock,
      signal,
      policy,
      onFailure: (error, attempt, retryInMs) =>
        deps.log.error('endpoint_wait_error', {
          attempt,
          error,
          retryInMs: Math.round(retryInMs),
          next: 'start the wait over',
        }),
    },
    () => waitOnce(deps, signal, policy),
  )
}

async function waitOnce(deps: EndpointWaitDeps, signal: AbortSignal, policy: BackoffPolicy): Promise<EndpointWaitResult> {
  const tracker = new SliceTracker(deps)
  /** LIST everything, or only the slices of `services` (unless a slice that holds cannot be found by Service). */
  const list = async (services?: readonly string[]) => {
    const narrowed = tracker.holdsUnlabelled ? undefined : services
    // Only slices that name the pod, or could not be read, are kept: thousands of slices cost one page of memory.
    const result = await deps.kube.listEndpointSlices(
      { labelSelector: narrowed === undefined ? undefined : selectorFor(narrowed), select: tracker.select },
      signal,
    )
    tracker.reset(result.items, narrowed)
    return result.resourceVersion
  }
  const resourceVersion = await listUntilAnswered(deps, signal, policy, () => list())
  const slicesAtStart = tracker.holdingCount
  deps.log.info('endpoints_listed', { holding: tracker.describe(), resourceVersion })
  if (tracker.done) return { slicesAtStart, mode: deps.mode }

  // Later LISTs ask only for the Services that route to the pod.
  const services = tracker.holdingServices()
  if (deps.mode === 'watch') {
    const outcome = await followWatch(deps, signal, policy, tracker, resourceVersion, () => list(services))
    if (outcome === 'done') return { slicesAtStart, mode: 'watch' }
    deps.log.warn('endpoint_watch_abandoned', {
      reason: `${WATCH_FAILURES_BEFORE_POLL} consecutive failures`,
      fallback: 'poll',
      pollIntervalMs: deps.pollIntervalMs,
    })
  }
  for (;;) {
    await deps.clock.sleep(deps.pollIntervalMs, signal)
    await listUntilAnswered(deps, signal, policy, () => list(services))
    if (tracker.done) return { slicesAtStart, mode: 'poll' }
  }
}

async function followWatch(
  deps: EndpointWaitDeps,
  signal: AbortSignal,
  policy: BackoffPolicy,
  tracker: SliceTracker,
  startVersion: string,
  relist: () => Promise<string>,
): Promise<'done' | 'failing'> {
  let resourceVersion: string | undefined = startVersion
  /** True from a relist until the next event: a 410 then means the server keeps losing our place. */
  let relisted = false
  const idleTimeoutMs = deps.watchIdleMs ?? WATCH_IDLE_MS
  const options = {
    clock: deps.clock,
    signal,
    policy,
    attempts: WATCH_FAILURES_BEFORE_POLL,
    onFailure: (error: unknown, attempt: number) => deps.log.warn('endpoint_watch_failed', { attempt, error }),
  }
  try {
    return await retry(options, async (progress): Promise<'done'> => {
      for (;;) {
        if (resourceVersion === undefined) {
          resourceVersion = await relist()
          relisted = true
          if (tracker.done) return 'done'
        }
        try {
          const startedAt = deps.clock.now()
          let events = 0
          const watchOptions = { resourceVersion, ...tracker.watchSelector(), timeoutSeconds: WATCH_TIMEOUT_SECONDS, idleTimeoutMs }
          for await (const event of deps.kube.watchEndpointSlices(watchOptions, signal)) {
            if (event.type === 'INVALID') tracker.markInvalid(event.name, event.service, event.problem)
            else if (event.type === 'ADDED' || event.type === 'MODIFIED') tracker.apply(event.slice)
            else if (event.type === 'DELETED') tracker.remove(event.slice)
            resourceVersion = event.resourceVersion ?? resourceVersion
            events++
            relisted = false
            progress()
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
          // Resuming would replay the same bad line: list again instead (after the backoff).
          if (error instanceof KubeInvalidObjectError || error instanceof KubeLimitError) resourceVersion = undefined
          throw error
        }
      }
    })
  } catch {
    if (signal.aborted) throw signal.reason
    return 'failing'
  }
}

/** Repeats a LIST until it succeeds or the signal aborts; poll mode waits at least its interval between tries. */
function listUntilAnswered<T>(deps: EndpointWaitDeps, signal: AbortSignal, policy: BackoffPolicy, attempt: () => Promise<T>): Promise<T> {
  return retry(
    {
      clock: deps.clock,
      signal,
      policy,
      ...(deps.mode === 'poll'
        ? { delayMs: (_failures: number, error: unknown) => Math.max(deps.pollIntervalMs, retryAfterOf(error) ?? 0) }
        : {}),
      onFailure: (error, attempt) =>
        deps.log.warn('endpoint_list_failed', {
          attempt,
          error,
          ...(error instanceof UpstreamError && error.status !== undefined ? { status: error.status } : {}),
        }),
    },
    attempt,
  )
}

function backoffPolicy(deps: EndpointWaitDeps): BackoffPolicy {
  return { ...DEFAULT_BACKOFF, ...(deps.random === undefined ? {} : { random: deps.random }) }
}
