/**
 * The fake API server's EndpointSlices (fake-kube.ts): one resourceVersion counter that every write moves on, a
 * bounded history of events that a WATCH can resume from, and the open watches each event fans out to, with
 * BOOKMARK events as the watch cache sends them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { EndpointSlice } from '../../src/kube/types.ts'
import { expiredStatus } from './fake-kube-status.ts'

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'
type Labels = Record<string, string>
/** Whether a LIST or WATCH's label and field selectors select this slice. */
export type Matcher = (labels: Labels, object: EndpointSlice) => boolean
type HistoryEntry = { rv: number; type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: EndpointSlice; labels: Labels }
type Watcher = { res: ServerResponse; matches: Matcher; bookmarks: boolean; bytes: number; sending: Promise<void> }

export type SliceStoreOptions = {
  /** Send BOOKMARK events this often to watchers that asked for them; 0 or unset: never. */
  bookmarkIntervalMs?: number
  /** Send each watch event in pieces of at most this many bytes, a few milliseconds apart; unset: in one write. */
  watchChunkBytes?: number
}

// How many past events a WATCH can resume from (older resourceVersions get ERROR 410): a bounded window, as the API
// server's watch cache keeps, so long simulator runs do not grow without end.
const HISTORY_LIMIT = 10_000

export type SliceStore = ReturnType<typeof createSliceStore>

export function createSliceStore(namespace: string, options: SliceStoreOptions = {}) {
  const slices = new Map<string, { slice: EndpointSlice; labels: Labels }>()
  let history: HistoryEntry[] = []
  let resourceVersion = 1000
  /** Lowest resourceVersion a WATCH may start from; below it the history is gone. */
  let oldestWatchable = resourceVersion
  const watchers = new Set<Watcher>()
  let bytesSent = 0

  function put(type: 'ADDED' | 'MODIFIED', slice: EndpointSlice) {
    resourceVersion++
    const object: EndpointSlice = structuredClone(slice)
    object.kind = 'EndpointSlice'
    object.apiVersion = 'discovery.k8s.io/v1'
    object.metadata = { namespace, ...object.metadata, resourceVersion: String(resourceVersion) }
    const labels = object.metadata.labels ?? {}
    slices.set(object.metadata.name!, { slice: object, labels })
    broadcast({ rv: resourceVersion, type, object, labels })
  }

  function broadcast(entry: HistoryEntry) {
    history.push(entry)
    if (history.length > HISTORY_LIMIT) {
      history = history.slice(-HISTORY_LIMIT)
      oldestWatchable = history[0]!.rv - 1
    }
    // Serialized once per event, however many watchers get it, as the API server's watch cache does.
    let line: string | undefined
    for (const watcher of watchers) {
      if (!watcher.matches(entry.labels, entry.object)) continue
      line ??= JSON.stringify({ type: entry.type, object: entry.object }) + '\n'
      write(watcher, entry.type, entry.object, line)
    }
  }

  function write(watcher: Watcher, type: EventType, object: unknown, serialized?: string) {
    if (watcher.res.writableEnded || watcher.res.destroyed) return
    const line = serialized ?? JSON.stringify({ type, object }) + '\n'
    watcher.bytes += line.length
    bytesSent += line.length
    const chunkBytes = options.watchChunkBytes
    if (chunkBytes !== undefined) {
      // In order behind the pieces already queued for this watcher, each piece its own flushed write.
      const pieces = Array.from({ length: Math.ceil(line.length / chunkBytes) }, (_, i) => line.slice(i * chunkBytes, (i + 1) * chunkBytes))
      watcher.sending = watcher.sending.then(async () => {
        for (const piece of pieces) {
          if (watcher.res.writableEnded || watcher.res.destroyed) return
          watcher.res.write(piece)
          watcher.res.socket?.uncork()
          await new Promise((resolve) => setTimeout(resolve, 2))
        }
      })
      return
    }
    watcher.res.write(line)
    // Out now, as the API server flushes each watch event once written (serveWatch's flusher.Flush()); Node's http
    // would otherwise cork the socket until the next tick, so every event of a burst would wait for the last one.
    watcher.res.socket?.uncork()
  }

  function bookmarkObject() {
    // An empty EndpointSlice with only the resourceVersion, as the watch cache builds it (c.newFunc()).
    return {
      kind: 'EndpointSlice',
      apiVersion: 'discovery.k8s.io/v1',
      metadata: { resourceVersion: String(resourceVersion) },
      addressType: '',
      endpoints: null,
      ports: null,
    }
  }

  /** Serves a WATCH: from now (ADDED for every slice), or from a resourceVersion still in the history. */
  function watch(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, matches: Matcher) {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' })
    res.flushHeaders()
    const watcher: Watcher = { res, matches, bookmarks: query.get('allowWatchBookmarks') === 'true', bytes: 0, sending: Promise.resolve() }
    const rvParam = query.get('resourceVersion')
    if (rvParam === null || rvParam === '' || rvParam === '0') {
      for (const stored of slices.values()) if (matches(stored.labels, stored.slice)) write(watcher, 'ADDED', stored.slice)
    } else {
      const from = Number(rvParam)
      if (!Number.isFinite(from) || from < oldestWatchable) {
        write(watcher, 'ERROR', expiredStatus(`too old resource version: ${rvParam} (${oldestWatchable})`))
        res.end()
        return
      }
      for (const entry of history) if (entry.rv > from && matches(entry.labels, entry.object)) write(watcher, entry.type, entry.object)
    }
    watchers.add(watcher)
    const timeoutSeconds = Number(query.get('timeoutSeconds') ?? 0)
    const timers: NodeJS.Timeout[] = []
    if (timeoutSeconds > 0) timers.push(setTimeout(() => res.end(), timeoutSeconds * 1_000))
    // The watch cache sends a bookmark 2 s before the watch's deadline, if its resourceVersion has moved past the
    // watcher's since the watch began (an unchanged one is not worth sending).
    const startVersion = resourceVersion
    if (watcher.bookmarks && timeoutSeconds > 2) {
      timers.push(
        setTimeout(() => resourceVersion > startVersion && write(watcher, 'BOOKMARK', bookmarkObject()), (timeoutSeconds - 2) * 1_000),
      )
    }
    if (watcher.bookmarks && (options.bookmarkIntervalMs ?? 0) > 0) {
      timers.push(setInterval(() => write(watcher, 'BOOKMARK', bookmarkObject()), options.bookmarkIntervalMs))
    }
    const cleanup = () => {
      watchers.delete(watcher)
      for (const timer of timers) clearTimeout(timer)
    }
    res.on('close', cleanup)
    req.on('close', cleanup)
  }

  return {
    get resourceVersion() {
      return resourceVersion
    },
    /** Moves the counter on for a write outside this store (a created Event) and returns the new value. */
    nextResourceVersion() {
      return ++resourceVersion
    },
    /** Lowest resourceVersion a WATCH may start from, or a LIST continue from. */
    get oldestWatchable() {
      return oldestWatchable
    },
    get watcherCount() {
      return watchers.size
    },
    /** Bytes of watch events written to watchers so far. */
    get watchBytes() {
      return bytesSent
    },
    get(name: string): EndpointSlice | undefined {
      const stored = slices.get(name)
      return stored ? structuredClone(stored.slice) : undefined
    },
    /** The slices `matches` selects, by name, as stored (not copies). */
    select(matches: Matcher): EndpointSlice[] {
      return [...slices.values()]
        .filter((s) => matches(s.labels, s.slice))
        .sort((a, b) => (a.slice.metadata!.name! < b.slice.metadata!.name! ? -1 : 1))
        .map((s) => s.slice)
    },
    upsert(slice: EndpointSlice) {
      put(slices.has(slice.metadata?.name ?? '') ? 'MODIFIED' : 'ADDED', slice)
    },
    remove(name: string) {
      const stored = slices.get(name)
      if (!stored) return
      slices.delete(name)
      resourceVersion++
      const object = { ...structuredClone(stored.slice), metadata: { ...stored.slice.metadata, resourceVersion: String(resourceVersion) } }
      broadcast({ rv: resourceVersion, type: 'DELETED', object, labels: stored.labels })
    },
    compact() {
      history = []
      oldestWatchable = resourceVersion
    },
    watch,
    bookmark() {
      for (const watcher of watchers) if (watcher.bookmarks) write(watcher, 'BOOKMARK', bookmarkObject())
    },
    expireWatches() {
      for (const watcher of [...watchers]) {
        write(watcher, 'ERROR', expiredStatus(`too old resource version: ${resourceVersion - 1} (${resourceVersion})`))
        watcher.res.end()
      }
    },
    closeWatches() {
      for (const watcher of [...watchers]) watcher.res.end()
    },
    /** Drops every open watch's connection without a word. */
    destroyWatches() {
      for (const watcher of watchers) watcher.res.destroy()
    },
  }
}
