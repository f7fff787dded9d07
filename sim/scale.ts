/**
 * The scale run: N drains at once, against one fake API server in a child process (plain HTTP: TLS would only add
 * the handshake cost to every one of the N connections). Every drain is an endpoint wait (src/kube/endpoint-wait.ts)
 * with its own Kubernetes client, connection pool and pod identity, as N sidecars would have. A real sidecar runs
 * in its own process on its own node and parses only its own watch stream. Here SCALE_PROBES of them, spread over
 * the slices, run that way (sim/scale-probe.ts, one process each); the others, the crowd (sim/scale-crowd.ts),
 * share one process at the lowest CPU priority: they make the API server's load real (N LISTs, N watches, the
 * fan-out to N connections) without taking this machine's cores from the sidecars that stand for real ones. The
 * pods are spread over EndpointSlices of 100 endpoints, as the EndpointSlice controller packs them; every pod is
 * then deleted at once and the controller writes each slice once. Measured: API requests and bytes received per
 * drain, and the detection latency from a slice's write in the API to the end of the endpoint wait of each pod in
 * it, for the sidecars in their own processes and, separately, for the crowd (a measure of this set-up: one core
 * parsing up to 1000 streams one after the other, not of a cluster).
 */
import { type ChildProcess, fork } from 'node:child_process'
import { setPriority } from 'node:os'
import { join } from 'node:path'
import { type Child, createWakeups, now, percentile, SIM_DIR, sleep, startChild, within } from './common.ts'
import type { PodRef } from './control-plane.ts'

/** Sidecars run in processes of their own (at most; every one when N is smaller). */
const SCALE_PROBES = 30

type Latencies = { p50: number | undefined; p99: number | undefined; max: number | undefined; count: number }

const summarize = (values: number[]): Latencies => ({
  p50: percentile(values, 50),
  p99: percentile(values, 99),
  max: values.length ? Math.max(...values) : undefined,
  count: values.length,
})

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
  /** Sidecars in processes of their own: from their slice's write in the API to the end of their wait. */
  detectionMs: Latencies
  /** The same for the sidecars that share one process (and one core). */
  sharedDetectionMs: Latencies
  /** How many of the N sidecars ran in processes of their own. */
  probes: number
  /** Time the fake API server took to write every slice and queue each event to every watcher. */
  apiFanOutMs: number
  /** File descriptors the crowd's process held with every wait running (Linux; undefined elsewhere). */
  openFds: number | undefined
  setupMs: number
  runMs: number
}

type Reply = { cmd: string } & Record<string, unknown>
type Ask = (message: unknown, answer: string, timeoutMs?: number) => Promise<Reply>

/** A forked child driven by IPC: `ask` sends a message (if any) and waits for the reply with that `cmd`. */
function forkChild(file: string): { child: ChildProcess; ask: Ask; exited: Promise<void> } {
  const child = fork(join(SIM_DIR, file), [], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  })
  const replies: Reply[] = []
  const wakeups = createWakeups()
  child.on('message', (message: Reply) => {
    replies.push(message)
    wakeups.wakeAll()
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const ask: Ask = async (message, answer, timeoutMs = 60_000) => {
    if (message !== undefined) child.send(message as object)
    const until = now() + timeoutMs
    for (;;) {
      const index = replies.findIndex((r) => r.cmd === answer)
      if (index !== -1) return replies.splice(index, 1)[0]!
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${file} exited before answering ${answer}`)
      if (now() > until) throw new Error(`${file}: no ${answer} within ${timeoutMs}ms`)
      await wakeups.next(100)
    }
  }
  return { child, ask, exited }
}

async function stop({ child, exited }: { child: ChildProcess; exited: Promise<void> }): Promise<void> {
  if (child.connected) child.send({ cmd: 'exit' })
  await within(exited, 5_000)
  child.kill('SIGKILL')
}

export async function runScale({
  n,
  mode,
  pollIntervalMs = 1_000,
  waitLimitMs = 60_000,
  probes = SCALE_PROBES,
}: {
  n: number
  mode: 'watch' | 'poll'
  pollIntervalMs?: number
  waitLimitMs?: number
  probes?: number
}): Promise<ScaleResult> {
  const api = forkChild('scale-api.ts')
  const crowd = forkChild('scale-crowd.ts')
  try {
    // Lowest priority: the crowd gets whatever CPU the API server and the sidecars in their own processes leave.
    setPriority(crowd.child.pid!, 19)
  } catch {
    // Not permitted here: the crowd then competes for the cores on equal terms, and the latencies show it.
  }
  const probeChildren: Child[] = []
  const startedAt = now()
  try {
    const { url } = (await api.ask(undefined, 'ready', 30_000)) as unknown as { url: string }
    await crowd.ask(undefined, 'ready', 30_000)
    const pods: PodRef[] = Array.from({ length: n }, (_, i) => ({
      name: `web-${i}`,
      uid: `00000000-0000-4000-9000-${String(i).padStart(12, '0')}`,
      ip: `127.2.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    }))
    const seeded = (await api.ask({ cmd: 'seed', pods }, 'seeded')) as unknown as { slices: number; placement: Record<string, string> }

    // Probes evenly spaced over the pods, so over the slices too.
    const probeCount = Math.min(n, probes)
    const probeIndexes = new Set(Array.from({ length: probeCount }, (_, k) => Math.floor((k * n) / probeCount)))
    const probeResolvedAt = new Map<string, number>()
    const probeBytes = new Map<string, number>()
    for (const [i, pod] of pods.entries()) {
      if (!probeIndexes.has(i)) continue
      const child = startChild(`scale probe ${pod.name}`, [join(SIM_DIR, 'scale-probe.ts')], {
        SCALE_API_URL: url,
        SCALE_POD: JSON.stringify(pod),
        SCALE_MODE: mode,
        SCALE_POLL_INTERVAL_MS: String(pollIntervalMs),
        NODE_NO_WARNINGS: '1',
      })
      probeChildren.push(child)
      child.waitFor('resolved', 10 * 60_000).then(
        (event) => {
          probeResolvedAt.set(pod.name, event.resolvedAt as number)
          probeBytes.set(pod.name, event.bytes as number)
        },
        () => {},
      )
    }
    const crowdPods = pods.filter((_, i) => !probeIndexes.has(i))
    if (crowdPods.length > 0) await crowd.ask({ cmd: 'start', url, pods: crowdPods, mode, pollIntervalMs }, 'started')
    const probesDone = Promise.all(probeChildren.map((child) => child.exited))
    const crowdDone =
      crowdPods.length > 0 ? crowd.ask(undefined, 'all-resolved', 10 * 60_000).catch(() => undefined) : Promise.resolve(undefined)

    // Every wait has listed (and, in watch mode, opened its watch) before the pods are deleted.
    const setupUntil = now() + 120_000
    for (;;) {
      const stats = await api.ask({ cmd: 'stats' }, 'stats')
      if (mode === 'watch' ? (stats.watchers as number) >= n : (stats.list as number) >= n) break
      if (now() > setupUntil)
        throw new Error(`scale run: only ${mode === 'watch' ? `${stats.watchers} watchers` : `${stats.list} lists`} of ${n} after 120 s`)
      await sleep(200)
    }
    const setupMs = now() - startedAt
    const { openFds } = (await crowd.ask({ cmd: 'report' }, 'report')) as unknown as { openFds: number | undefined }
    await sleep(mode === 'poll' ? pollIntervalMs : 300)

    const runStart = now()
    const { writes, fanOutMs } = (await api.ask({ cmd: 'terminate', pods }, 'terminated')) as unknown as {
      writes: Record<string, number>
      fanOutMs: number
    }
    await within(Promise.all([crowdDone, probesDone]), waitLimitMs)
    const runMs = now() - runStart
    const stats = await api.ask({ cmd: 'stats' }, 'stats')
    const report = (await crowd.ask({ cmd: 'report' }, 'report')) as unknown as { resolvedAt: Record<string, number>; bytes: number }

    const own: number[] = []
    const shared: number[] = []
    for (const [i, pod] of pods.entries()) {
      const probe = probeIndexes.has(i)
      const at = probe ? probeResolvedAt.get(pod.name) : report.resolvedAt[pod.name]
      const written = writes[seeded.placement[pod.name]!]
      if (at !== undefined && written !== undefined) (probe ? own : shared).push(at - written)
    }
    const bytes = report.bytes + [...probeBytes.values()].reduce((sum, b) => sum + b, 0)
    const resolved = own.length + shared.length
    const requests = (stats.list as number) + (stats.watch as number)
    return {
      n,
      mode,
      slices: seeded.slices,
      resolved,
      unresolved: n - resolved,
      apiRequestsPerDrain: requests / n,
      listPerDrain: (stats.list as number) / n,
      watchPerDrain: (stats.watch as number) / n,
      bytesPerDrain: bytes / n,
      detectionMs: summarize(own),
      sharedDetectionMs: summarize(shared),
      probes: probeCount,
      apiFanOutMs: fanOutMs,
      openFds,
      setupMs,
      runMs,
    }
  } finally {
    for (const child of probeChildren) if (!child.hasExited()) child.process.kill('SIGKILL')
    await within(Promise.all(probeChildren.map((c) => c.exited)), 5_000)
    await stop(crowd)
    await stop(api)
  }
}
