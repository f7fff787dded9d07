/**
 * Faults the fake API server (fake-kube.ts) answers with instead of serving a request: a status, a reset, a hang,
 * raw or gzip bodies, stalled, cut and flooding streams, endless LIST pages. Queued for the next matching request,
 * or for every one.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RequestVerb } from './fake-kube-request.ts'

export type Fault =
  /** Answer with this status, body and headers instead of serving the request. */
  | { kind: 'status'; status: number; body: string; headers?: Record<string, string> }
  /** Destroy the socket without answering (a connection reset). */
  | { kind: 'reset' }
  /** Accept the request and never answer (until the client gives up or the server closes). */
  | { kind: 'hang' }
  /** Answer 200 with this raw body (malformed JSON, truncated streams, ...). */
  | { kind: 'raw'; body: string; contentType?: string }
  /** Answer 200 with headers flushed, then send nothing, ever: a stalled stream (no events, no bookmarks). */
  | { kind: 'stall' }
  /** Answer 200, send these first bytes of a body, then destroy the connection: a reset mid-response. */
  | { kind: 'cut'; partial: string }
  /**
   * Answer 200 with `prefix`, then `bytes` bytes of `x` (in writes of `chunkBytes`, waiting for the socket to
   * drain), then `suffix`; end the response only if `end`. A watch line that never ends, a 100 MB page, ...
   */
  | { kind: 'flood'; prefix: string; bytes: number; suffix: string; end: boolean; chunkBytes?: number }
  /** Answer 200 with this body gzip-compressed (content-encoding: gzip, whatever the client asked for). */
  | { kind: 'gzip'; body: Buffer }
  /** A LIST page of `slices` slices (each `endpointsPerSlice` endpoints, the first this pod's, ready) and a continue token, forever. */
  | { kind: 'endless-pages'; slices: number; endpointsPerSlice: number; podIp: string }

/** `resourceVersion`: the server's current one, which endless pages report. */
export function createFaults(namespace: string, resourceVersion: () => number) {
  const queue: Array<{ verb: RequestVerb | undefined; fault: Fault; always: boolean }> = []
  let pageCounter = 0
  /** The items of an endless page, serialized once per fault: pages then cost the server nothing to send. */
  const endlessItems = new WeakMap<Fault, string>()

  function endlessPage(res: ServerResponse, fault: Extract<Fault, { kind: 'endless-pages' }>) {
    const page = ++pageCounter
    let items = endlessItems.get(fault)
    if (items === undefined) {
      items = JSON.stringify(
        Array.from({ length: fault.slices }, (_, i) => ({
          metadata: { name: `endless-${i}`, namespace, labels: { 'kubernetes.io/service-name': `endless-${i}` } },
          addressType: 'IPv4',
          endpoints: Array.from({ length: fault.endpointsPerSlice }, (_, e) => ({
            addresses: [e === 0 ? fault.podIp : `198.18.${(e >> 8) & 255}.${e & 255}`],
            conditions: { ready: true, serving: true, terminating: false },
            nodeName: `node-${e % 50}.example.internal`,
            targetRef: { kind: 'Pod', namespace, name: `pod-${i}-${e}`, uid: `00000000-0000-4000-8000-${String(e).padStart(12, '0')}` },
          })),
        })),
      )
      endlessItems.set(fault, items)
    }
    const text = `{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"${resourceVersion()}","continue":"page-${page}"},"items":${items}}`
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  }

  return {
    /** Queues `fault` for the next request of `verb` (undefined: of any LIST or WATCH), or for every one if `always`. */
    add(fault: Fault, verb: RequestVerb | undefined, always = false) {
      queue.push({ verb, fault, always })
    },
    /**
     * The fault for a request of `verb`, if one is queued: removed from the queue unless it is for every request. A
     * fault queued without a verb is meant for LIST/WATCH; reviews take only faults queued for 'create'.
     */
    take(verb: RequestVerb): Fault | undefined {
      const index = queue.findIndex((f) => f.verb === verb || (f.verb === undefined && verb !== 'create'))
      if (index === -1) return undefined
      const entry = queue[index]!
      if (!entry.always) queue.splice(index, 1)
      return entry.fault
    },
    /** Answers the request with `fault`. */
    answer(req: IncomingMessage, res: ServerResponse, fault: Fault) {
      switch (fault.kind) {
        case 'flood':
          void flood(res, fault)
          return
        case 'gzip':
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
          res.end(fault.body)
          return
        case 'endless-pages':
          return endlessPage(res, fault)
        case 'status':
          res.writeHead(fault.status, { 'content-type': 'text/plain; charset=utf-8', ...fault.headers })
          res.end(fault.body)
          return
        case 'reset':
          req.socket.destroy()
          return
        case 'hang':
          return
        case 'stall':
          res.writeHead(200, { 'content-type': 'application/json' })
          res.flushHeaders()
          return
        case 'raw':
          res.writeHead(200, { 'content-type': fault.contentType ?? 'application/json' })
          res.end(fault.body)
          return
        case 'cut':
          res.writeHead(200, { 'content-type': 'application/json' })
          res.write(fault.partial)
          res.socket?.uncork()
          setTimeout(() => req.socket.destroy(), 20)
          return
      }
    },
  }
}

async function flood(res: ServerResponse, fault: Extract<Fault, { kind: 'flood' }>) {
  res.writeHead(200, { 'content-type': 'application/json' })
  const write = async (data: string | Buffer) => {
    if (res.destroyed) return false
    if (!res.write(data)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done)
          res.off('close', done)
          resolve()
        }
        res.on('drain', done)
        res.on('close', done)
      })
    }
    return !res.destroyed
  }
  const chunkBytes = fault.chunkBytes ?? 64 * 1024
  const chunk = Buffer.alloc(chunkBytes, 'x')
  if (!(await write(fault.prefix))) return
  for (let sent = 0; sent < fault.bytes; sent += chunkBytes) {
    if (!(await write(sent + chunkBytes <= fault.bytes ? chunk : chunk.subarray(0, fault.bytes - sent)))) return
  }
  if (!(await write(fault.suffix))) return
  if (fault.end) res.end()
}
