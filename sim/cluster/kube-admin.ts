/**
 * The harness's own API client: logs in with the system:masters client certificate (RBAC never applies to it),
 * speaks JSON, and turns a non-2xx answer into an error naming the request and the server's Status message.
 */
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'
import { Agent, fetch } from 'undici'
import { sleep } from '../common.ts'
import type { KeyPair } from './pki.ts'

export type KubeObject = {
  apiVersion?: string
  kind?: string
  metadata: {
    name?: string
    namespace?: string
    uid?: string
    resourceVersion?: string
    labels?: Record<string, string>
    [key: string]: unknown
  }
  [key: string]: any
}
export type WatchEvent = { type: string; object: KubeObject }

export class KubeStatusError extends Error {
  readonly what: string
  readonly status: number
  readonly body: any
  constructor(what: string, status: number, body: any) {
    super(`${what}: HTTP ${status}: ${typeof body === 'object' && body !== null ? (body.message ?? JSON.stringify(body)) : String(body)}`)
    this.what = what
    this.status = status
    this.body = body
  }
}

/** Collection path of a kind, cluster-wide or in a namespace. */
export function collectionPath(kind: string, namespace?: string): string {
  const known: Record<string, [string, string, boolean]> = {
    Namespace: ['/api/v1', 'namespaces', false],
    Node: ['/api/v1', 'nodes', false],
    Pod: ['/api/v1', 'pods', true],
    Service: ['/api/v1', 'services', true],
    ServiceAccount: ['/api/v1', 'serviceaccounts', true],
    Secret: ['/api/v1', 'secrets', true],
    ConfigMap: ['/api/v1', 'configmaps', true],
    EndpointSlice: ['/apis/discovery.k8s.io/v1', 'endpointslices', true],
    Role: ['/apis/rbac.authorization.k8s.io/v1', 'roles', true],
    RoleBinding: ['/apis/rbac.authorization.k8s.io/v1', 'rolebindings', true],
    Deployment: ['/apis/apps/v1', 'deployments', true],
  }
  const entry = known[kind]
  if (entry === undefined) throw new Error(`collectionPath: no API path known for kind ${kind}`)
  const [group, resource, namespaced] = entry
  if (!namespaced) return `${group}/${resource}`
  if (namespace === undefined) throw new Error(`collectionPath: ${kind} is namespaced; no namespace given`)
  return `${group}/namespaces/${namespace}/${resource}`
}

export type KubeAdmin = ReturnType<typeof createKubeAdmin>

export function createKubeAdmin(baseUrl: string, caFile: string, user: KeyPair) {
  const newAgent = () =>
    new Agent({
      connect: { ca: readFileSync(caFile), cert: readFileSync(user.cert), key: readFileSync(user.key) },
      headersTimeout: 30_000,
      bodyTimeout: 0,
    })
  let dispatcher = newAgent()

  async function request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<any> {
    const what = `${method} ${path}`
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      dispatcher,
      headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': contentType }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    })
    const parsed = jsonOrText(await response.text())
    if (!response.ok) throw new KubeStatusError(what, response.status, parsed)
    return parsed
  }

  return {
    baseUrl,
    request,
    get: (path: string) => request('GET', path),
    create: (path: string, object: unknown) => request('POST', path, object),
    /** A strategic-merge patch (lists merged by their key, e.g. pod conditions by type), as kubectl sends. */
    patch: (path: string, patch: unknown, type: 'strategic' | 'merge' | 'json' = 'strategic') =>
      request(
        'PATCH',
        path,
        patch,
        { strategic: 'application/strategic-merge-patch+json', merge: 'application/merge-patch+json', json: 'application/json-patch+json' }[
          type
        ],
      ),
    delete: (path: string, options?: unknown) => request('DELETE', path, options),
    /** Creates an object in its collection (namespace from `namespace` or the object's own). */
    apply(object: KubeObject, namespace?: string): Promise<KubeObject> {
      const ns = namespace ?? object.metadata.namespace
      const body =
        ns === undefined || object.kind === 'Namespace' || object.kind === 'Node'
          ? object
          : { ...object, metadata: { ...object.metadata, namespace: ns } }
      return request('POST', collectionPath(object.kind!, ns), body)
    },
    /**
     * A WATCH as a stream of events (one JSON object per line). Ends when the server closes it; `signal` stops it.
     * Resolves once the response headers are in, so a caller can act knowing the watch is established.
     */
    async watch(
      path: string,
      query: Record<string, string>,
      signal: AbortSignal,
    ): Promise<{ status: number; events: AsyncIterable<WatchEvent>; body: any }> {
      const url = `${baseUrl}${path}?${new URLSearchParams({ watch: '1', ...query })}`
      const response = await fetch(url, { dispatcher, signal, headers: { accept: 'application/json' } })
      if (!response.ok)
        return { status: response.status, events: (async function* () {})(), body: await response.json().catch(() => undefined) }
      const lines = createInterface({ input: Readable.fromWeb(response.body as never), crlfDelay: Infinity })
      async function* events() {
        try {
          for await (const line of lines) if (line.trim() !== '') yield JSON.parse(line) as WatchEvent
        } catch (error) {
          if (!signal.aborted) throw error
        }
      }
      return { status: response.status, events: events(), body: undefined }
    },
    /** Drops every pooled connection (after the API server was killed, they lead nowhere). */
    async reconnect() {
      const old = dispatcher
      dispatcher = newAgent()
      await old.destroy().catch(() => {})
    },
    close: () => dispatcher.close(),
  }
}

/** Polls `probe` until it returns something other than undefined; the error names `what` and the last failure. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  { timeoutMs = 60_000, intervalMs = 100 } = {},
): Promise<T> {
  const until = performance.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (error) {
      last = error
    }
    if (performance.now() > until)
      throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`)
    await sleep(intervalMs)
  }
}

/** A GET as a bearer-token user (the sidecar's identity), trusting the cluster CA; resolves with the status and body. */
export async function getWithToken(baseUrl: string, caFile: string, token: string, path: string): Promise<{ status: number; body: any }> {
  const dispatcher = new Agent({ connect: { ca: readFileSync(caFile) } })
  try {
    const response = await fetch(`${baseUrl}${path}`, {
      dispatcher,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      signal: AbortSignal.timeout(30_000),
    })
    const body = jsonOrText(await response.text())
    return { status: response.status, body }
  } finally {
    await dispatcher.close()
  }
}

/** A body as JSON, or as the text itself when it is not JSON (a 429 from APF, a proxy's page): kept for the error. */
function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
