/**
 * The sidecar's own watch meets a real 410 from a real kube-apiserver, and lists again.
 *
 * The real server answers 410 only for a resourceVersion older than its watch cache (etcd compaction does not
 * matter: the cache keeps its window), so the 410 needs a restarted API server whose fresh cache starts above the
 * resourceVersion the sidecar resumes from, and a sidecar that still has its watch (not yet polling) when the new
 * server answers. kube-apiserver opens its listening socket early in start-up, so a reconnect made while it starts
 * waits in the backlog and usually meets the new server; but one made between the old process's exit and that
 * listen is refused, and one answered before the RBAC cache is in gets a 403: two such and a third failure make
 * the sidecar poll (the faults test's 3 s outage always does). So the sidecar reaches the server through a TCP
 * relay on loopback (as a client reaches it through a load balancer or the Service VIP) that holds new connections
 * unanswered from the kill until the new server is ready. The 410 the sidecar then gets is the server's own.
 */
import test from 'ava'
import { useCluster } from '../../sim/cluster/cluster-fixture.ts'
import { waitFor } from '../../sim/cluster/kube-admin.ts'
import { startRelay } from '../../sim/relay.ts'
import { endpointsOf } from '../../sim/cluster/kubelet.ts'
import {
  deleteAndCallHook,
  holdController,
  story,
  TIMER_MARGIN_MS,
  terminatingWritten,
  webPodWithSidecar,
} from '../helpers/cluster-drain.ts'

const cluster = useCluster(test)

/** The sidecar's successful EndpointSlice LISTs so far, from its metrics. */
async function listsAnswered(sidecar: { url: string }): Promise<number> {
  const metrics = await (await fetch(`${sidecar.url}/metrics`)).text()
  const line = /drain_coordinator_kube_api_requests_total\{(?=[^}]*verb="list")(?=[^}]*code="200")[^}]*\} (\d+)/.exec(metrics)
  return Number(line?.[1] ?? 0)
}

test('kube-apiserver restarted under a held connection: the sidecar’s WATCH gets a real 410, it lists again, and completes only after the terminating write', async (t) => {
  const c = cluster()
  const relay = await startRelay({ host: '127.0.0.1', target: { host: '127.0.0.1', port: Number(new URL(c.apiUrl).port) } })
  t.teardown(() => relay.close())
  const { ns, pod, sidecar } = await webPodWithSidecar(t, c, 'expired', { DRAIN_KUBE_API_URL: relay.url, DRAIN_TIMEOUT: '120s' })
  holdController(t, c)
  const { hook, listed } = await deleteAndCallHook(c, sidecar, pod, 120, { listTimeoutMs: 60_000 })
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

  const letGo = performance.now()
  c.controllerManager.resume()
  const written = await terminatingWritten(c, pod, letGo)
  const answer = await hook
  t.log(story(sidecar))
  t.is(answer.body.outcome, 'completed', JSON.stringify(answer.body))
  t.true(answer.at - written.after >= 1_000 - TIMER_MARGIN_MS, `a settle after the write: ${Math.round(answer.at - written.after)} ms`)
  t.false(
    sidecar.logs.some((l) => l.event === 'endpoint_watch_abandoned'),
    'the watch was kept (the 410 is not a failure that leads to polling)',
  )
})
