/**
 * The sidecar's own watch meets a real 410 from a real kube-apiserver, and lists again.
 *
 * The real server answers 410 only for a resourceVersion older than its watch cache (etcd compaction does not
 * matter: the cache keeps its window), so the 410 needs a restarted API server whose fresh cache starts above the
 * resourceVersion the sidecar resumes from. A plain kill and restart does not get there: the sidecar's WATCH is
 * refused at once while the server is down, three times within a second, and it falls back to polling. So the
 * sidecar reaches the server through a TCP relay on loopback (as a client reaches an API server through a load
 * balancer or the Service VIP): while the server restarts, the relay holds new connections unanswered instead of
 * refusing them, and hands them on once the new server is ready. The sidecar's next WATCH then reaches the new
 * server with its old resourceVersion, and the 410 it gets is the server's own.
 */
import { connect, createServer, type Socket } from 'node:net'
import test from 'ava'
import { callHook, createService, namespaceWithRbac, readyPod, startPodSidecar, useCluster } from '../helpers/cluster-fixture.ts'
import { waitFor } from '../helpers/cluster/kube-admin.ts'
import { deletePodGracefully, endpointsOf } from '../helpers/cluster/kubelet.ts'

const cluster = useCluster(test)

/** A TCP relay to `target`; while `hold()` is on, new connections wait unanswered until `release()`. */
async function startRelay(target: URL) {
  const sockets = new Set<Socket>()
  let parked: Socket[] | undefined
  const forward = (client: Socket) => {
    const upstream = connect(Number(target.port), target.hostname)
    sockets.add(upstream)
    const close = () => {
      client.destroy()
      upstream.destroy()
    }
    for (const socket of [client, upstream]) socket.on('error', close).on('close', close)
    upstream.on('close', () => sockets.delete(upstream))
    client.pipe(upstream).pipe(client)
  }
  const server = createServer((client) => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    client.on('error', () => client.destroy())
    if (parked) parked.push(client)
    else forward(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    url: `https://127.0.0.1:${port}`,
    hold() {
      parked = []
    },
    /** Forwards the held connections; returns how many there were. */
    release(): number {
      const waiting = (parked ?? []).filter((client) => !client.destroyed)
      parked = undefined
      for (const client of waiting) forward(client)
      return waiting.length
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

/** The sidecar's log, one event per line, for the test's log when it fails. */
function story(sidecar: { logs: Array<Record<string, unknown>> }): string {
  return sidecar.logs
    .map(
      (l) =>
        `${l.event}${l.resourceVersion ? ` rv=${l.resourceVersion}` : ''}${l.error ? ` ${JSON.stringify(l.error).slice(0, 160)}` : ''}`,
    )
    .join('\n')
}

/** The sidecar's successful EndpointSlice LISTs so far, from its metrics. */
async function listsAnswered(sidecar: { url: string }): Promise<number> {
  const metrics = await (await fetch(`${sidecar.url}/metrics`)).text()
  const line = /drain_coordinator_kube_api_requests_total\{(?=[^}]*verb="list")(?=[^}]*code="200")[^}]*\} (\d+)/.exec(metrics)
  return Number(line?.[1] ?? 0)
}

test('kube-apiserver restarted under a held connection: the sidecar’s WATCH gets a real 410, it lists again, and completes only after the terminating write', async (t) => {
  const c = cluster()
  const relay = await startRelay(new URL(c.apiUrl))
  t.teardown(() => relay.close())
  const ns = await namespaceWithRbac(c, 'expired')
  await createService(c, ns, 'web', { app: 'web' })
  const pod = await readyPod(c, ns, 'web-1', { labels: { app: 'web' }, services: 1 })
  const sidecar = await startPodSidecar(c, pod, { DRAIN_KUBE_API_URL: relay.url, DRAIN_TIMEOUT: '120s' })
  t.teardown(() => sidecar.stop())
  await sidecar.waitForLog('kube_access_ok')
  c.controllerManager.pause()
  t.teardown(() => c.controllerManager.resume())
  await deletePodGracefully(c.admin, ns, pod.name, 120)
  const hook = callHook(sidecar)
  // Awaited below; a test that fails first stops the sidecar, and the hook's failed fetch is not news then.
  hook.catch(() => {})
  const listed = await sidecar.waitForLog('endpoints_listed', {}, 60_000)
  t.deepEqual(Object.values(listed.holding as object), ['ready'], `listed ready (the controller is held back):\n${story(sidecar)}`)

  // Writes the sidecar's watch does not select: etcd's revision moves past the sidecar's resourceVersion, so the
  // restarted server's cache starts above it.
  for (const name of ['after-1', 'after-2']) await c.admin.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name } }, ns)
  const listsBefore = await listsAnswered(sidecar)
  const linesBefore = sidecar.logs.length
  relay.hold()
  const restartStarted = performance.now()
  await c.restartApiserver()
  const held = relay.release()
  t.log(`restart took ${Math.round(performance.now() - restartStarted)} ms; connections held through it: ${held}`)

  const expired = await sidecar.waitForLog('endpoint_watch_expired', {}, 60_000).catch((error: Error) => {
    throw new Error(`${error.message}; the sidecar's log:\n${story(sidecar)}`)
  })
  t.regex(String((expired.error as { message?: unknown }).message), /status 410\b.*too old resource version/, JSON.stringify(expired.error))
  t.true(sidecar.logs.indexOf(expired) >= linesBefore, 'the 410 came after the restart')
  // After the 410 the sidecar lists again before it watches: at least one more answered LIST than the renewals and
  // restarts it logged since the restart account for.
  await waitFor(
    'the relist after the 410',
    async () => {
      const since = sidecar.logs.slice(linesBefore)
      const others = since.filter((l) => l.event === 'endpoint_watch_idle' || l.event === 'endpoints_listed').length
      return (await listsAnswered(sidecar)) - listsBefore >= others + 1 ? true : undefined
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  )
  t.false(
    sidecar.logs.some((l) => l.event === 'drain_finished'),
    `held after the relist while the endpoint is still ready:\n${story(sidecar)}`,
  )
  t.deepEqual(
    (await endpointsOf(c.admin, ns, pod.uid)).map((e) => e.conditions.ready),
    [true],
    'still ready when the controller is let go',
  )

  c.controllerManager.resume()
  const writtenAt = await waitFor(
    "the controller's terminating write",
    async () => ((await endpointsOf(c.admin, ns, pod.uid))[0]?.conditions.terminating ? performance.now() : undefined),
    { timeoutMs: 120_000, intervalMs: 50 },
  )
  const answer = await hook
  t.log(story(sidecar))
  t.is(answer.body.outcome, 'completed', JSON.stringify(answer.body))
  t.true(answer.at - writtenAt >= 1_000 - 100, 'a settle after the write')
  t.false(
    sidecar.logs.some((l) => l.event === 'endpoint_watch_abandoned'),
    'the watch was kept (the 410 is not a failure that leads to polling)',
  )
})
