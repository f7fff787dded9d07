/**
 * An in-memory KubeClient for fake-clock tests of the endpoint wait and the drain: no sockets, so a test moves
 * time by hand and every step is deterministic. Behaves like the API (docs/kubernetes-api.md §2): LIST returns a
 * resourceVersion, WATCH streams changes after it, a too-old resourceVersion yields an ERROR event with a 410
 * Status. Objects go through the same validation as the HTTP client's (kube/schema.ts), so a test can hand it
 * anything (`upsertRaw`, `emitRaw`). The wire format itself is covered against the HTTP fake (fake-kube.ts).
 */
import { UpstreamError } from '../../src/errors.ts'
import { KubeInvalidObjectError, type KubeClient, sliceEventOf } from '../../src/kube/client.ts'
import { decodeSlice } from '../../src/kube/schema.ts'
import type { EndpointSlice, WatchEvent } from '../../src/kube/types.ts'

type Stream = { push: (event: WatchEvent | 'end' | Error) => void }

export function createMemoryKube() {
  const slices = new Map<string, unknown>()
  let rv = 100
  let oldest = rv
  const history: Array<{ rv: number; event: WatchEvent }> = []
  const streams = new Set<Stream>()
  const calls: Array<{
    verb: 'list' | 'watch'
    resourceVersion?: string
    labelSelector?: string | undefined
    fieldSelector?: string | undefined
  }> = []
  const listFailures: Error[] = []
  const watchFailures: Error[] = []
  let watchesToExpire = 0

  const emit = (event: WatchEvent) => {
    history.push({ rv, event })
    for (const stream of streams) stream.push(event)
  }
  const stamp = (slice: EndpointSlice): EndpointSlice => ({
    ...structuredClone(slice),
    metadata: { ...slice.metadata, resourceVersion: String(++rv) },
  })

  const client: KubeClient = {
    async listEndpointSlices<T>(
      { labelSelector, select }: { labelSelector?: string | undefined; select?: (item: ReturnType<typeof decodeSlice>) => T | undefined },
      signal: AbortSignal,
    ) {
      signal.throwIfAborted()
      calls.push({ verb: 'list', labelSelector })
      const failure = listFailures.shift()
      if (failure) throw failure
      const items: T[] = []
      for (const raw of slices.values()) {
        const decoded = decodeSlice(raw)
        if (select === undefined) {
          if (!decoded.ok) throw new KubeInvalidObjectError('LIST endpointslices', decoded.invalid.problem)
          items.push(structuredClone(decoded.value) as T)
          continue
        }
        const kept = select(decoded)
        if (kept !== undefined) items.push(kept)
      }
      return { resourceVersion: String(rv), items }
    },
    async *watchEndpointSlices({ resourceVersion, labelSelector, fieldSelector }, signal) {
      signal.throwIfAborted()
      calls.push({ verb: 'watch', resourceVersion, labelSelector, fieldSelector })
      const failure = watchFailures.shift()
      if (failure) throw failure
      const queue: Array<WatchEvent | 'end' | Error> = []
      let wake: (() => void) | undefined
      const stream: Stream = {
        push(item) {
          queue.push(item)
          wake?.()
        },
      }
      if (Number(resourceVersion) < oldest || watchesToExpire > 0) {
        watchesToExpire = Math.max(0, watchesToExpire - 1)
        queue.push({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } }, 'end')
      } else {
        for (const entry of history) if (entry.rv > Number(resourceVersion)) queue.push(entry.event)
        streams.add(stream)
      }
      const onAbort = () => wake?.()
      signal.addEventListener('abort', onAbort)
      try {
        for (;;) {
          while (queue.length === 0) {
            signal.throwIfAborted()
            await new Promise<void>((resolve) => (wake = resolve))
            wake = undefined
          }
          signal.throwIfAborted()
          const item = queue.shift()!
          if (item === 'end') return
          if (item instanceof Error) throw item
          yield sliceEventOf(item, 'WATCH endpointslices')
        }
      } finally {
        streams.delete(stream)
        signal.removeEventListener('abort', onAbort)
      }
    },
  }

  return {
    client,
    calls,
    get watching() {
      return streams.size
    },
    /** Stores any value as a slice under `name` (ADDED or MODIFIED to watchers, as it is). */
    upsertRaw(name: string, value: unknown) {
      rv++
      const type = slices.has(name) ? 'MODIFIED' : 'ADDED'
      slices.set(name, value)
      emit({ type, object: value } as WatchEvent)
    },
    /** Sends open watches any event (kept in history like a real one); its object need not be valid. */
    emitRaw(type: WatchEvent['type'], object: unknown) {
      rv++
      emit({ type, object } as WatchEvent)
    },
    /** Forgets a slice without telling watchers (as if its DELETED event was lost). */
    forget(name: string) {
      slices.delete(name)
    },
    upsert(slice: EndpointSlice) {
      const name = slice.metadata!.name!
      const type = slices.has(name) ? 'MODIFIED' : 'ADDED'
      const stamped = stamp(slice)
      slices.set(name, stamped)
      emit({ type, object: stamped })
    },
    remove(name: string) {
      const last = slices.get(name)
      if (!last) return
      slices.delete(name)
      // The last object as it was, with a new resourceVersion when it has metadata to carry one.
      const plain = (value: unknown) => typeof value === 'object' && value !== null && !Array.isArray(value)
      // Shallow: a stored value may be nested too deep for structuredClone.
      const object =
        plain(last) && plain((last as EndpointSlice).metadata)
          ? { ...(last as EndpointSlice), metadata: { ...(last as EndpointSlice).metadata, resourceVersion: String(++rv) } }
          : last
      emit({ type: 'DELETED', object } as WatchEvent)
    },
    bookmark() {
      emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: String(++rv) }, addressType: '', endpoints: null } })
    },
    /** Drops history and ends open watches with an ERROR 410, as a watch cache that lost our place does. */
    expire() {
      history.length = 0
      oldest = rv
      for (const stream of streams) {
        stream.push({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } })
        stream.push('end')
      }
    },
    /** Makes the next WATCH answer with a 410 ERROR event whatever its resourceVersion (a server that keeps losing our place). */
    expireNextWatch() {
      watchesToExpire++
    },
    /** Closes open watch streams normally (server-side timeout). */
    closeWatches() {
      for (const stream of streams) stream.push('end')
    },
    breakWatches(error = new UpstreamError('WATCH endpointslices', { message: 'stream broke: other side closed' })) {
      for (const stream of streams) stream.push(error)
    },
    failNextList(error: Error = new UpstreamError('LIST endpointslices', { status: 503, message: 'unavailable' })) {
      listFailures.push(error)
    },
    failNextWatch(error: Error = new UpstreamError('WATCH endpointslices', { status: 500, message: 'internal error' })) {
      watchFailures.push(error)
    },
  }
}
