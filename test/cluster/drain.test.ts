/**
 * The drain against the real EndpointSlice controller: kube-controller-manager writes the slices, the tests play
 * the kubelet (graceful delete, then the hook call), and the sidecar bundle runs as the pod's sidecar with a
 * pod-bound token. The hook must be answered only after the controller's terminating write, plus the settle.
 * Serial: the tests pause the one controller-manager of this file.
 */
import test, { type ExecutionContext } from 'ava'
import type { Cluster } from '../../sim/cluster/cluster.ts'
import {
  callHook,
  createService,
  type HookAnswer,
  namespaceWithRbac,
  type PodSidecar,
  type ReadyPod,
  readyPod,
  useCluster,
} from '../../sim/cluster/cluster-fixture.ts'
import { waitFor } from '../../sim/cluster/kube-admin.ts'
import { deletePodGracefully, endpointsOf, finishPod } from '../../sim/cluster/kubelet.ts'
import {
  checkedSidecar,
  deleteAndCallHook,
  holdController,
  TIMER_MARGIN_MS,
  terminatingWritten,
  webPodWithSidecar,
} from '../helpers/cluster-drain.ts'

const cluster = useCluster(test)
const SETTLE_MS = 1_000

/**
 * The rollout's delete and the kubelet's hook call, with the controller held back until the sidecar has listed the
 * slices: otherwise its terminating write (milliseconds after the delete) may come first, and the sidecar would
 * find nothing left to wait for.
 */
async function deleteAndCallHookOnceListed(t: ExecutionContext, c: Cluster, sidecar: PodSidecar, pod: ReadyPod): Promise<HookAnswer> {
  holdController(t, c)
  const { hook } = await deleteAndCallHook(c, sidecar, pod, 60)
  c.controllerManager.resume()
  return hook
}

test.serial('the hook is held while the controller has not written the terminating endpoint, and released a settle after it', async (t) => {
  const c = cluster()
  const { ns, pod, sidecar } = await webPodWithSidecar(t, c, 'drain')

  // The controller is stopped for the delete, so its terminating write comes only when the test lets it.
  holdController(t, c)
  const { hook } = await deleteAndCallHook(c, sidecar, pod, 60)
  await new Promise((resolve) => setTimeout(resolve, 3_000))
  const stillReady = await endpointsOf(c.admin, ns, pod.uid)
  t.deepEqual(
    stillReady.map((e) => e.conditions.ready),
    [true],
    'the slice still lists the pod ready: the controller has not run',
  )
  t.false(
    sidecar.logs.some((l) => l.event === 'drain_finished'),
    'no release while the slice still routes to the pod',
  )

  const letGo = performance.now()
  c.controllerManager.resume()
  const written = await terminatingWritten(c, pod, letGo)
  const answer = await hook
  t.is(answer.status, 200)
  t.is(answer.body.outcome, 'completed')
  t.deepEqual(
    written.endpoint.conditions,
    { ready: false, serving: true, terminating: true },
    'what the controller writes for a Ready pod being deleted',
  )
  t.true(
    answer.at - written.after >= SETTLE_MS - TIMER_MARGIN_MS,
    `released ${Math.round(answer.at - written.after)} ms after the terminating write at the latest; settle is ${SETTLE_MS} ms`,
  )
  t.true(answer.body.phases.settle.durationSeconds >= SETTLE_MS / 1000)
  t.is(answer.body.phases.endpoints.slicesAtStart, 1)
  t.truthy(
    sidecar.logs.find((l) => l.event === 'endpoint_changed' && l.from === 'ready' && l.to === 'not-ready'),
    'the sidecar logged the change it waited for',
  )

  // The kubelet's final delete after the app exited: the pod and its endpoint go.
  await finishPod(c.admin, ns, pod.name, pod.uid)
  await waitFor('the endpoint gone', async () => ((await endpointsOf(c.admin, ns, pod.uid)).length === 0 ? true : undefined))
})

test.serial('a pod in two Services is released only when both slices are written', async (t) => {
  const c = cluster()
  const ns = await namespaceWithRbac(c, 'two')
  await createService(c, ns, 'web', { app: 'web' })
  await createService(c, ns, 'web-admin', { app: 'web' })
  const pod = await readyPod(c, ns, 'web-1', { labels: { app: 'web' }, services: 2 })
  const sidecar = await checkedSidecar(t, c, pod)

  const answer = await deleteAndCallHookOnceListed(t, c, sidecar, pod)
  t.is(answer.body.outcome, 'completed')
  t.is(answer.body.phases.endpoints.slicesAtStart, 2)
  const endpoints = await endpointsOf(c.admin, ns, pod.uid)
  t.deepEqual(endpoints.map((e) => e.service).sort(), ['web', 'web-admin'])
  t.true(
    endpoints.every((e) => e.conditions.ready === false && e.conditions.terminating === true),
    'both slices show it terminating',
  )
})

test.serial('a Service with publishNotReadyAddresses keeps ready:true while terminating: counted as removed, and logged', async (t) => {
  const c = cluster()
  const ns = await namespaceWithRbac(c, 'pnra')
  await createService(c, ns, 'web-peers', { app: 'web' }, { publishNotReadyAddresses: true, clusterIP: 'None' })
  const pod = await readyPod(c, ns, 'web-1', { labels: { app: 'web' }, services: 1 })
  const sidecar = await checkedSidecar(t, c, pod)

  const answer = await deleteAndCallHookOnceListed(t, c, sidecar, pod)
  t.is(answer.body.outcome, 'completed')
  t.is(answer.body.phases.endpoints.slicesAtStart, 1)
  const [endpoint] = await endpointsOf(c.admin, ns, pod.uid)
  t.deepEqual(
    endpoint?.conditions,
    { ready: true, serving: true, terminating: true },
    'what the real controller writes with publishNotReadyAddresses',
  )
  t.truthy(sidecar.logs.find((l) => l.event === 'endpoint_terminating_but_ready'))
})

test.serial('a pod in no Service has nothing to wait for: released after the settle', async (t) => {
  const c = cluster()
  const ns = await namespaceWithRbac(c, 'none')
  await createService(c, ns, 'other', { app: 'other' })
  const pod = await readyPod(c, ns, 'lonely-1', { labels: { app: 'lonely' } })
  const sidecar = await checkedSidecar(t, c, pod)

  await deletePodGracefully(c.admin, ns, pod.name, 60)
  const answer = await callHook(sidecar)
  t.is(answer.body.outcome, 'completed')
  t.is(answer.body.phases.endpoints.slicesAtStart, 0)
  t.true(answer.body.durationSeconds < 10, `took ${answer.body.durationSeconds} s`)
})

test.serial('a dual-stack pod behind a dual-stack Service is released only when both its IPv4 and IPv6 slices are written', async (t) => {
  const c = cluster()
  const ns = await namespaceWithRbac(c, 'dual')
  await createService(c, ns, 'web', { app: 'web' }, { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'] })
  const pod = await readyPod(c, ns, 'web-1', { labels: { app: 'web' }, services: 2, dualStack: true })
  const slices = (await c.admin.get(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`)).items
  t.deepEqual(
    slices.map((s: { addressType: string }) => s.addressType).sort(),
    ['IPv4', 'IPv6'],
    'the controller writes one slice per family',
  )
  const sidecar = await checkedSidecar(t, c, pod)

  const answer = await deleteAndCallHookOnceListed(t, c, sidecar, pod)
  t.is(answer.body.outcome, 'completed')
  t.is(answer.body.phases.endpoints.slicesAtStart, 2)
  const endpoints = await endpointsOf(c.admin, ns, pod.uid)
  t.is(endpoints.length, 2)
  t.true(
    endpoints.every((e) => e.conditions.ready === false && e.conditions.terminating === true),
    'both families show it terminating',
  )
})
