/**
 * The simulated load balancer: its own process, an HTTP reverse proxy in front of a Service's replicas. It learns
 * the endpoints through a LIST and WATCH of the Service's EndpointSlices, like kube-proxy or an ingress
 * controller, and routes only to endpoints it has seen ready (`ready` true or absent). Every change takes effect
 * SIM_LB_LAG_MS after it arrived: the time a real data plane takes to be reprogrammed. Keeps keep-alive
 * connections to the backends, as real proxies do, and does not retry a failed request on another backend
 * (Envoy's and most cloud load balancers' default for a connection reset or refusal after routing).
 *
 * Environment: SIM_API_URL, SIM_CA_FILE, SIM_TOKEN, SIM_NAMESPACE, SIM_SERVICE, SIM_LB_LAG_MS, SIM_LB_PORT, SIM_LB_SOURCE (the
 * address it connects to pods from, where pods are network namespaces: not the node's, or the traffic gate would take
 * it for the kubelet's).
 * Reports `listening` and `routing` (the backends it routes to, each time the set changes) on stdout.
 */
import { readFileSync } from 'node:fs'
import { Agent, createServer, request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { createInterface } from 'node:readline'
import { emit, sleep } from './common.ts'

const apiUrl = process.env.SIM_API_URL!
const ca = process.env.SIM_CA_FILE ? readFileSync(process.env.SIM_CA_FILE) : undefined
const token = process.env.SIM_TOKEN ?? 'test-token'
const namespace = process.env.SIM_NAMESPACE ?? 'default'
const service = process.env.SIM_SERVICE ?? 'web'
const lagMs = Number(process.env.SIM_LB_LAG_MS ?? 1_000)
const listenPort = Number(process.env.SIM_LB_PORT ?? 0)
const sourceAddress = process.env.SIM_LB_SOURCE || undefined

type SliceEndpoints = Map<string, string[]> // slice name -> "ip:port" of ready endpoints
type EndpointSlice = {
  metadata?: { name?: string; resourceVersion?: string }
  endpoints?: Array<{ addresses?: string[]; conditions?: { ready?: boolean | null } }> | null
  ports?: Array<{ port?: number }> | null
}

/** What the API says now, and what the data plane applies `lagMs` later. */
const apiView: SliceEndpoints = new Map()
let routing: string[] = []

function readyBackends(slice: EndpointSlice): string[] {
  const port = slice.ports?.[0]?.port
  if (port === undefined) return []
  const out: string[] = []
  for (const endpoint of slice.endpoints ?? []) {
    if (endpoint.conditions?.ready === false) continue
    for (const address of endpoint.addresses ?? []) out.push(`${address}:${port}`)
  }
  return out
}

function apiChanged(): void {
  const snapshot = [...new Set([...apiView.values()].flat())].sort()
  setTimeout(() => {
    if (snapshot.join(',') === routing.join(',')) return
    const removed = routing.filter((b) => !snapshot.includes(b))
    const added = snapshot.filter((b) => !routing.includes(b))
    routing = snapshot
    emit('routing', { backends: routing, added, removed })
  }, lagMs)
}

const collection = `${apiUrl}/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`
const selector = encodeURIComponent(`kubernetes.io/service-name=${service}`)

function get(url: string): Promise<import('node:http').IncomingMessage> {
  const send = url.startsWith('https:') ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', 'user-agent': 'sim-load-balancer' },
        ...(ca ? { ca } : {}),
      },
      resolve,
    )
    req.on('error', reject)
    req.end()
  })
}

async function listAndWatch(): Promise<void> {
  for (let attempt = 0; attempt < 1_000; attempt++) {
    try {
      const listResponse = await get(`${collection}?labelSelector=${selector}`)
      let body = ''
      for await (const chunk of listResponse) body += chunk
      const list = JSON.parse(body) as { metadata: { resourceVersion: string }; items: EndpointSlice[] }
      apiView.clear()
      for (const slice of list.items) apiView.set(slice.metadata!.name!, readyBackends(slice))
      apiChanged()
      let rv = list.metadata.resourceVersion
      for (;;) {
        const watch = await get(`${collection}?watch=1&labelSelector=${selector}&resourceVersion=${rv}&timeoutSeconds=300`)
        for await (const line of createInterface({ input: watch, crlfDelay: Infinity })) {
          if (line.trim() === '') continue
          const event = JSON.parse(line) as { type: string; object: EndpointSlice & { code?: number } }
          if (event.type === 'ERROR') throw new Error(`watch error ${event.object.code}`)
          const name = event.object.metadata?.name
          if (event.type === 'DELETED' && name) apiView.delete(name)
          else if ((event.type === 'ADDED' || event.type === 'MODIFIED') && name) apiView.set(name, readyBackends(event.object))
          rv = event.object.metadata?.resourceVersion ?? rv
          if (event.type !== 'BOOKMARK') apiChanged()
        }
      }
    } catch (error) {
      emit('watch_failed', { error: String(error) })
      await sleep(200)
    }
  }
}

const agents = new Map<string, Agent>()
const agentFor = (backend: string) => {
  let agent = agents.get(backend)
  if (!agent) {
    agent = new Agent({ keepAlive: true, maxSockets: 64, keepAliveMsecs: 1_000 })
    agents.set(backend, agent)
  }
  return agent
}
let next = 0

const server = createServer((req, res) => {
  if (routing.length === 0) {
    res.writeHead(503, { 'x-sim-lb': 'no-backend' }).end('no healthy upstream\n')
    return
  }
  const backend = routing[next++ % routing.length]!
  const [host, port] = backend.split(':') as [string, string]
  const forward = (retry: boolean) => {
    const upstream = httpRequest(
      // The retry takes a new connection of its own: another pooled one may be closing too.
      {
        host,
        port: Number(port),
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: backend, connection: retry ? 'keep-alive' : 'close' },
        agent: retry ? agentFor(backend) : false,
        timeout: 2_000,
        ...(sourceAddress ? { localAddress: sourceAddress } : {}),
      },
      (upstreamRes) => {
        const headers = { ...upstreamRes.headers }
        delete headers.connection
        delete headers['keep-alive']
        res.writeHead(upstreamRes.statusCode ?? 502, { ...headers, 'x-sim-backend': backend })
        upstreamRes.pipe(res)
      },
    )
    upstream.on('timeout', () => upstream.destroy(Object.assign(new Error('upstream timeout'), { code: 'ETIMEDOUT' })))
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      if (res.headersSent) {
        res.destroy()
        return
      }
      // A pooled connection the server closed just as the request went out (the keep-alive race): retried once on
      // a new connection, as Node's documentation advises and proxies do for a request that got no answer at all.
      if (retry && upstream.reusedSocket && error.code === 'ECONNRESET' && (req.method === 'GET' || req.method === 'HEAD'))
        return forward(false)
      // The proxy answers 502 for a refused or reset upstream connection (504 for a timeout), as Envoy and nginx do.
      const status = error.code === 'ETIMEDOUT' ? 504 : 502
      res
        .writeHead(status, { 'x-sim-upstream-error': error.code ?? 'error', 'x-sim-backend': backend })
        .end(`upstream error: ${error.code ?? error.message}\n`)
    })
    if (retry) req.pipe(upstream)
    else upstream.end()
  }
  forward(true)
})
server.keepAliveTimeout = 10_000

server.listen(listenPort, '127.0.0.1', () => {
  const address = server.address()
  emit('listening', { port: typeof address === 'object' && address ? address.port : listenPort })
  void listAndWatch()
})
process.once('SIGTERM', () => process.exit(0))
