/**
 * The steps the cluster tests (test/cluster/) repeat around one drain: a pod behind a Service with its sidecar
 * started and checked, the controller held back, the rollout's delete and the kubelet's hook call, the
 * controller's terminating write, and the sidecar's log told as a story for a failing assertion's message.
 */
import type { ExecutionContext } from 'ava'
import type { Cluster } from '../../sim/cluster/cluster.ts'
import {
  callHook,
  createService,
  namespaceWithRbac,
  type PodSidecar,
  type ReadyPod,
  readyPod,
  startPodSidecar,
} from '../../sim/cluster/cluster-fixture.ts'
import { waitFor } from '../../sim/cluster/kube-admin.ts'
import { deletePodGracefully, endpointsOf } from '../../sim/cluster/kubelet.ts'

/** The sidecar of `pod` (startPodSidecar), stopped when the test ends; resolves once it has checked its API access. */
export async function checkedSidecar(
  t: ExecutionContext,
  c: Cluster,
  pod: ReadyPod,
  env: Record<string, string> = {},
  options?: Parameters<typeof startPodSidecar>[3],
): Promise<PodSidecar> {
  const sidecar = await startPodSidecar(c, pod, env, options)
  t.teardown(() => sidecar.stop())
  await sidecar.waitForLog('kube_access_ok')
  return sidecar
}

/** In a fresh namespace (`prefix`-...), the Service web and its pod web-1, ready in its slice, with its checked sidecar. */
export async function webPodWithSidecar(t: ExecutionContext, c: Cluster, prefix: string, env: Record<string, string> = {}) {
  const ns = await namespaceWithRbac(c, prefix)
  await createService(c, ns, 'web', { app: 'web' })
  const pod = await readyPod(c, ns, 'web-1', { labels: { app: 'web' }, services: 1 })
  const sidecar = await checkedSidecar(t, c, pod, env)
  return { ns, pod, sidecar }
}

/** Pauses kube-controller-manager, so its terminating write waits, until the test resumes it or ends. */
export function holdController(t: ExecutionContext, c: Cluster): void {
  c.controllerManager.pause()
  t.teardown(() => c.controllerManager.resume())
}

/**
 * The rollout's graceful delete and the kubelet's hook call; resolves once the sidecar has listed the slices, with
 * the hook's answer still to come and the listing's log line.
 */
export async function deleteAndCallHook(
  c: Cluster,
  sidecar: PodSidecar,
  pod: ReadyPod,
  graceSeconds: number,
  { listTimeoutMs }: { listTimeoutMs?: number } = {},
) {
  await deletePodGracefully(c.admin, pod.namespace, pod.name, graceSeconds)
  const hook = callHook(sidecar)
  // Awaited by the test; one that fails first stops the sidecar, and the hook's failed fetch is not news then.
  hook.catch(() => {})
  const listed = await sidecar.waitForLog('endpoints_listed', {}, listTimeoutMs)
  return { hook, listed }
}

/**
 * A time (performance.now()) the controller's terminating write for the pod is known to come after, and the
 * endpoint as written: a lower bound on the write, so `answer.at - after >= settle` holds for a correct sidecar
 * however late the test's polls are. The sidecar sees the write through its watch, sooner than the test's poll (its
 * interval plus a GET) does, so the time the poll saw it would take the poll's lag off the measured settle. The
 * bound is the time taken just before the last GET that still answered "not terminating" (a LIST is a consistent
 * read, so the write was not yet in when that GET was served); `notBefore` (when the test let the controller, or
 * the store it writes to, go) stands in if the first GET already sees the write.
 */
export async function terminatingWritten(c: Cluster, pod: ReadyPod, notBefore: number) {
  let after = notBefore
  return waitFor(
    "the controller's terminating write",
    async () => {
      const asked = performance.now()
      const [endpoint] = await endpointsOf(c.admin, pod.namespace, pod.uid)
      if (endpoint?.conditions.terminating === true) return { after, endpoint }
      if (endpoint !== undefined) after = asked
      return undefined
    },
    { timeoutMs: 120_000, intervalMs: 50 },
  )
}

/** Node's timers may fire a millisecond early against performance.now(): all the slack a settle's lower bound allows. */
export const TIMER_MARGIN_MS = 5

/** The sidecar's log, one event per line with its resourceVersion, change, status or error, for a failing test's message. */
export function story(sidecar: { logs: Array<Record<string, unknown>> }): string {
  return sidecar.logs
    .map(
      (l) =>
        `${l.event}${l.resourceVersion ? ` rv=${l.resourceVersion}` : ''}${l.from ? ` ${l.from} -> ${l.to} (${l.why})` : ''}${l.status ? ` ${l.status}` : ''}${l.error ? ` ${JSON.stringify(l.error).slice(0, 160)}` : ''}`,
    )
    .join('\n')
}
