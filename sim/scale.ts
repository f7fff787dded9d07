/**
 * The scale run: N drains at once. N endpoint waits (src/kube/endpoint-wait.ts, each with its own Kubernetes
 * client, connection pool and pod identity, as N sidecars would have) run in this process against one fake API
 * server in a child process (plain HTTP: TLS would only add the handshake cost to every one of the N
 * connections). The pods are spread over EndpointSlices of 100 endpoints, as the EndpointSlice controller packs
 * them; every pod is then deleted at once and the controller writes each slice once. Measured: API requests and
 * bytes received per drain, and the detection latency from the slice write in the API to the end of that pod's
 * endpoint wait.
 */
import { fork } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { systemClock } from '../src/clock.ts'
import { createKubeClient } from '../src/kube/client.ts'
import { waitForEndpointRemoval } from '../src/kube/endpoint-wait.ts'
import { staticToken } from '../src/kube/token.ts'
import { silentLogger } from '../src/log.ts'
import { createFetch, type Fetch } from '../src/transport.ts'
import { now, percentile, SIM_DIR, sleep, within } from './common.ts'
import type { PodRef } from './control-plane.ts'

export type ScaleResult = {
  n: number
  mode: 'watch' | 'poll'
  slices: number
  resolved: number
  /** Waits still running when the run gave up on them. */
  unresolved: number
  apiRequestsPerDrain: number
  listPerDrain: number
  watchPerDrain: number
  bytesPerDrain: number
  detectionMs: { p50: number | undefined; p99: number | undefined; max: number | undefined }
  /** Time the fake API server took to write every slice and queue each event to every watcher. */
  apiFanOutMs: number
  /** File descriptors this process held with every wait running (Linux; undefined elsewhere). */
  openFds: number | undefined
  setupMs: number
  runMs: number
}

type Reply = { cmd: string } & Record<string, unknown>

export async function runScale({ n, mode, pollIntervalMs = 1_000, waitLimitMs = 60_000 }: { n: number; mode: 'watch' | 'poll'; pollIntervalMs?: number; waitLimitMs?: number }): Promise<ScaleResult> {
  const api = fork(join(SIM_DIR, 'scale-api.ts'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, NODE_NO_WARNINGS: '1' } })
  const replies: Reply[] = []
  const waiters = new Set<() => void>()
  api.on('message', (message: Reply) => {
    replies.push(message)
    for (const wake of waiters) wake()
  })
  const exited = new Promise<void>((resolve) => api.once('exit', () => resolve()))
  const ask = async (message: unknown, answer: string, timeoutMs = 60_000): Promise<Reply> => {
    if (message !== undefined) api.send(message as object)
    const until = now() + timeoutMs
    for (;;) {
      const index = replies.findIndex((r) => r.cmd === answer)
      if (index !== -1) return replies.splice(index, 1)[0]!
      if (now() > until) throw new Error(`scale API: no ${answer} within ${timeoutMs}ms`)
      await new Promise<void>((resolve) => {
        const wake = () => (waiters.delete(wake), resolve())
        waiters.add(wake)
        setTimeout(wake, 100)
      })
    }
  }
  const abort = new AbortController()
  const fetches: Array<Fetch & { close(): Promise<void> }> = []
  const startedAt = now()
  try {
    const { url } = (await ask(undefined, 'ready', 30_000)) as unknown as { url: string }
    const pods: PodRef[] = Array.from({ length: n }, (_, i) => ({
      name: `web-${i}`,
      uid: `00000000-0000-4000-9000-${String(i).padStart(12, '0')}`,
      ip: `127.2.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    }))
    const seeded = (await ask({ cmd: 'seed', pods }, 'seeded')) as unknown as { slices: number; placement: Record<string, string> }

    let bytes = 0
    let listsAnswered = 0
    const resolvedAt = new Map<string, number>()
    const waits = pods.map((pod) => {
      const fetch = createFetch({})
      fetches.push(fetch)
      // Counts every body byte the sidecar receives (LIST pages and the watch stream).
      const counting: Fetch = async (target, init) => {
        const response = await fetch(target, init)
        if (!response.body) return response
        const isList = !target.includes('watch=')
        const counter = new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            bytes += chunk.byteLength
            controller.enqueue(chunk)
          },
          flush() {
            if (isList) listsAnswered++
          },
        })
        return new Response(response.body.pipeThrough(counter), { status: response.status, statusText: response.statusText, headers: response.headers })
      }
      const kube = createKubeClient({ apiUrl: url, namespace: 'default', fetch: counting, token: staticToken('test-token'), clock: systemClock, userAgent: 'drain-coordinator-scale' })
      return waitForEndpointRemoval(
        { kube, clock: systemClock, log: silentLogger, pod: { name: pod.name, namespace: 'default', uid: pod.uid, ips: [pod.ip] }, mode, pollIntervalMs },
        abort.signal,
      ).then(
        () => void resolvedAt.set(pod.name, now()),
        () => {},
      )
    })

    // Every wait has listed (and, in watch mode, opened its watch) before the pods are deleted.
    const setupUntil = now() + 120_000
    for (;;) {
      const stats = await ask({ cmd: 'stats' }, 'stats')
      if (mode === 'watch' ? (stats.watchers as number) >= n : listsAnswered >= n) break
      if (now() > setupUntil) throw new Error(`scale run: only ${mode === 'watch' ? `${stats.watchers} watchers` : `${listsAnswered} lists`} of ${n} after 120 s`)
      await sleep(200)
    }
    const setupMs = now() - startedAt
    let openFds: number | undefined
    try {
      openFds = readdirSync('/proc/self/fd').length
    } catch {
      openFds = undefined
    }
    await sleep(mode === 'poll' ? pollIntervalMs : 300)

    const runStart = now()
    const { writes, fanOutMs } = (await ask({ cmd: 'terminate', pods }, 'terminated')) as unknown as { writes: Record<string, number>; fanOutMs: number }
    await within(Promise.all(waits), waitLimitMs)
    const runMs = now() - runStart
    abort.abort(new Error('scale run over'))
    const stats = await ask({ cmd: 'stats' }, 'stats')

    const latencies: number[] = []
    for (const pod of pods) {
      const at = resolvedAt.get(pod.name)
      const written = writes[seeded.placement[pod.name]!]
      if (at !== undefined && written !== undefined) latencies.push(at - written)
    }
    const requests = (stats.list as number) + (stats.watch as number)
    return {
      n, mode, slices: seeded.slices, resolved: resolvedAt.size, unresolved: n - resolvedAt.size,
      apiRequestsPerDrain: requests / n, listPerDrain: (stats.list as number) / n, watchPerDrain: (stats.watch as number) / n,
      bytesPerDrain: bytes / n,
      detectionMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.length ? Math.max(...latencies) : undefined },
      apiFanOutMs: fanOutMs, openFds, setupMs, runMs,
    }
  } finally {
    abort.abort(new Error('scale run over'))
    await within(Promise.all(fetches.map((f) => f.close().catch(() => {}))), 5_000)
    if (api.connected) api.send({ cmd: 'exit' })
    await within(exited, 5_000)
    api.kill('SIGKILL')
  }
}
