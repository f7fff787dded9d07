/**
 * Faults the real components can play, mid-drain: kube-apiserver killed (SIGKILL) and started again; etcd stopped
 * (SIGSTOP) for a few seconds; the token file rotated while the old token is revoked; and the pod-bound token once
 * the pod object is gone. In each, the controller's terminating write is held back (kube-controller-manager
 * stopped) until the fault is under way, so the only way to a `completed` hook is through the fault.
 * Serial: the faults hit the one control plane of this file.
 */
import { readFileSync } from 'node:fs'
import test from 'ava'
import { callHook, createService, namespaceWithRbac, readyPod, useCluster } from '../../sim/cluster/cluster-fixture.ts'
import { getWithToken, waitFor } from '../../sim/cluster/kube-admin.ts'
import { deletePodGracefully, endpointsOf, finishPod, requestPodToken } from '../../sim/cluster/kubelet.ts'
import {
  checkedSidecar,
  deleteAndCallHook,
  holdController,
  story,
  TIMER_MARGIN_MS,
  terminatingWritten,
  webPodWithSidecar,
} from '../helpers/cluster-drain.ts'

const cluster = useCluster(test)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A pod behind a Service, its sidecar started and checked, the controller paused, the pod deleted, the hook called.
 * Every fault test needs the sidecar's first LIST to see its endpoint still ready (the controller held back). On a
 * busy machine that precondition has failed about once in twenty runs (the terminating write already there, cause
 * not found): the set-up is then made again with a new pod, at most three times, and the test fails only if it
 * never holds. The assertions of each test are never retried.
 */
async function drainingPod(t: import('ava').ExecutionContext, prefix: string, env: Record<string, string> = {}) {
  for (let attempt = 1; ; attempt++) {
    const c = cluster()
    const { ns, pod, sidecar } = await webPodWithSidecar(t, c, `${prefix}${attempt}`, { DRAIN_TIMEOUT: '120s', ...env })
    holdController(t, c)
    t.deepEqual(
      (await endpointsOf(c.admin, ns, pod.uid)).map((e) => e.conditions.ready),
      [true],
      'ready before the delete',
    )
    const { hook, listed: listing } = await deleteAndCallHook(c, sidecar, pod, 120)
    const listed = listing.holding
    const listedReady = listed !== undefined && Object.values(listed as object).join() === 'ready'
    if (!listedReady) {
      const why = `the sidecar listed ${JSON.stringify(listed)}, not its endpoint ready (the controller was to be held back):\n${story(sidecar)}\n${JSON.stringify(await endpointsOf(c.admin, ns, pod.uid))}`
      if (attempt === 3) {
        t.fail(why)
      } else {
        t.log(`set-up attempt ${attempt} did not hold: ${why}`)
        c.controllerManager.resume()
        await sidecar.stop()
        continue
      }
    }
    return { c, ns, pod, sidecar, hook, terminatingWritten: (notBefore: number) => terminatingWritten(c, pod, notBefore) }
  }
}

const released = (sidecar: { logs: Array<{ event: string }> }) => sidecar.logs.some((l) => l.event === 'drain_finished')

test.serial(
  'kube-apiserver killed and restarted mid-drain: the hook is held through the outage and released after the terminating write',
  async (t) => {
    const { c, sidecar, hook, terminatingWritten } = await drainingPod(t, 'apikill')
    await c.restartApiserver({ downMs: 3_000 })
    t.false(released(sidecar), `not released while the API server was down:\n${story(sidecar)}`)
    const letGo = performance.now()
    c.controllerManager.resume()
    const written = await terminatingWritten(letGo)
    const answer = await hook
    t.log(story(sidecar))
    t.is(answer.body.outcome, 'completed', JSON.stringify(answer.body))
    t.true(answer.at - written.after >= 1_000 - TIMER_MARGIN_MS, `a settle after the write: ${Math.round(answer.at - written.after)} ms`)
    const trouble = sidecar.logs.filter((l) => /^endpoint_(watch_failed|list_failed|watch_expired|watch_idle)$/.test(l.event))
    t.true(trouble.length > 0, 'the sidecar noticed the outage')
  },
)

test.serial('etcd stopped for 5 s mid-drain: nothing is released early, and the drain completes once etcd is back', async (t) => {
  const { c, sidecar, hook, terminatingWritten } = await drainingPod(t, 'etcdstop')
  c.etcd.pause()
  t.teardown(() => c.etcd.resume())
  c.controllerManager.resume()
  await sleep(5_000)
  t.false(released(sidecar), `not released while etcd was stopped:\n${story(sidecar)}`)
  // The controller's write cannot be stored before etcd runs again.
  const letGo = performance.now()
  c.etcd.resume()
  const written = await terminatingWritten(letGo)
  const answer = await hook
  t.log(story(sidecar))
  t.is(answer.body.outcome, 'completed', JSON.stringify(answer.body))
  t.true(answer.at - written.after >= 1_000 - TIMER_MARGIN_MS, `a settle after the write: ${Math.round(answer.at - written.after)} ms`)
})

test.serial(
  'the token file rotated mid-drain while the old token is revoked: the sidecar re-reads it after a 401 and completes',
  async (t) => {
    const c = cluster()
    const ns = await namespaceWithRbac(c, 'rotate')
    await createService(c, ns, 'web', { app: 'web' })
    const pod = await readyPod(c, ns, 'web-1', { labels: { app: 'web' }, services: 1 })
    // The first token is bound to a Secret, so deleting the Secret revokes it (a pod-bound token cannot be revoked
    // while its pod exists); the second is bound to the pod, as the kubelet's is.
    const secret = await c.admin.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'first-token-anchor' } }, ns)
    const first = await c.admin.create(`/api/v1/namespaces/${ns}/serviceaccounts/drain-coordinator/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        expirationSeconds: 600,
        boundObjectRef: { apiVersion: 'v1', kind: 'Secret', name: 'first-token-anchor', uid: secret.metadata.uid },
      },
    })
    const sidecar = await checkedSidecar(t, c, pod, { DRAIN_TIMEOUT: '90s' }, { token: first.status.token })
    holdController(t, c)
    const { hook } = await deleteAndCallHook(c, sidecar, pod, 120)

    await sidecar.rotateToken(await requestPodToken(c.admin, ns, 'drain-coordinator', pod.pod))
    await c.admin.delete(`/api/v1/namespaces/${ns}/secrets/first-token-anchor`)
    const slices = `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`
    await waitFor(
      'the first token revoked',
      async () => ((await getWithToken(c.apiUrl, c.caFile, first.status.token, slices)).status === 401 ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 250 },
    )
    // The watch open before the rotation keeps streaming; its next renewal (at most 10 s of silence) uses the
    // cached, now revoked, token and gets a 401.
    await waitFor(
      'a 401 seen by the sidecar',
      async () => {
        const metrics = await (await fetch(`${sidecar.url}/metrics`)).text()
        return /drain_coordinator_kube_api_requests_total\{[^}]*code="401"[^}]*\} [1-9]/.test(metrics) ? true : undefined
      },
      { timeoutMs: 40_000, intervalMs: 250 },
    ).catch((error: Error) => Promise.reject(new Error(`${error.message}; the sidecar's log:\n${story(sidecar)}`)))
    c.controllerManager.resume()
    const answer = await hook
    t.log(story(sidecar))
    t.is(answer.body.outcome, 'completed', JSON.stringify(answer.body))
  },
)

test.serial(
  'once the pod object is gone its token is refused (401): a drain that starts then holds to DRAIN_TIMEOUT, never completes blind',
  async (t) => {
    const c = cluster()
    const { ns, pod, sidecar } = await webPodWithSidecar(t, c, 'gone', { DRAIN_TIMEOUT: '6s' })
    const token = readFileSync(sidecar.tokenFile, 'utf8')
    const slices = `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`

    await deletePodGracefully(c.admin, ns, pod.name, 60)
    t.is((await getWithToken(c.apiUrl, c.caFile, token, slices)).status, 200, 'valid while the pod is Terminating')
    await finishPod(c.admin, ns, pod.name, pod.uid)
    await waitFor('the pod gone', async () => ((await endpointsOf(c.admin, ns, pod.uid)).length === 0 ? true : undefined))
    const refused = await waitFor(
      'the token refused',
      async () => {
        const answer = await getWithToken(c.apiUrl, c.caFile, token, slices)
        return answer.status === 200 ? undefined : answer
      },
      { timeoutMs: 30_000 },
    )
    t.like(refused, { status: 401, body: { kind: 'Status', reason: 'Unauthorized', code: 401 } })
    const answer = await callHook(sidecar)
    t.is(answer.body.outcome, 'timeout', JSON.stringify(answer.body))
    const failures = sidecar.logs.filter((l) => l.event === 'endpoint_list_failed')
    // The refusals are what held it; a busy machine may add a failure of another kind (a request cut by its
    // timeout), which holds the hook just the same.
    t.true(
      failures.some((l) => l.status === 401),
      JSON.stringify(failures.map((l) => [l.status, l.error])),
    )
  },
)
