/**
 * The simulated control plane: the fake Kubernetes API server from the tests, serving the EndpointSlices of one
 * Service, and an EndpointSlice controller that behaves like kube-controller-manager's (podToEndpoint): a ready
 * pod appears as `ready: true, serving: true, terminating: false`; once the pod is deleted it becomes
 * `ready: false, serving: true, terminating: true`; once the pod has exited (the Pod object is gone) its
 * endpoint is removed. Each reaction comes `controllerDelayMs` after the pod change that causes it, and the
 * controller writes one slice update for all the pod changes it has pending (its batching), at most 100
 * endpoints per slice.
 */
import { startFakeKube, type FakeKube } from './fakes/fake-kube.ts'
import type { EndpointSlice } from '../src/kube/types.ts'
import { now } from './common.ts'

/** `port`: the pod's own serving port, when pods differ (default: the Service's); the controller groups by port. */
export type PodRef = { name: string; uid: string; ip: string; port?: number }
type EndpointCondition = 'ready' | 'terminating'

const MAX_ENDPOINTS_PER_SLICE = 100

export type ControlPlane = Awaited<ReturnType<typeof startControlPlane>>

export async function startControlPlane(options: {
  service: string
  port: number
  controllerDelayMs: number
  tls?: boolean
  /** Where the API server listens (default loopback) and the certificate it serves there. */
  host?: string
  certificate?: { cert: string | Buffer; key: string | Buffer }
  onEvent?: (event: string, fields: Record<string, unknown>) => void
  /** Called just before each slice write or deletion is committed (and broadcast to watchers). */
  onSliceWrite?: (name: string, at: number) => void
}) {
  const kube: FakeKube = await startFakeKube({
    tls: options.tls ?? true,
    bookmarkIntervalMs: 0,
    host: options.host,
    certificate: options.certificate,
  })
  /** The controller's desired endpoint state for each pod, by name; absent: not in any slice. */
  const desired = new Map<string, { pod: PodRef; condition: EndpointCondition }>()
  const timers = new Set<NodeJS.Timeout>()
  let pending = false
  let sliceNames: string[] = []
  /** Slice of each pod ever placed, and how many pods each slice holds. */
  const placement = new Map<string, string>()
  const counts = new Map<string, number>()
  /** Like the real controller, endpoints with different ports go to different slices. */
  const sliceName = (port: number, index: number) =>
    `${options.service}-${port === options.port ? '' : `p${port}-`}${String(index).padStart(5, '0')}`

  function endpointFor(pod: PodRef, condition: EndpointCondition) {
    const terminating = condition === 'terminating'
    return {
      addresses: [pod.ip],
      conditions: { ready: !terminating, serving: true, terminating },
      nodeName: 'sim-node',
      targetRef: { kind: 'Pod', namespace: kube.namespace, name: pod.name, uid: pod.uid },
    }
  }

  /** Writes every slice whose content changed: one update per slice, however many pods changed in it. */
  function sync() {
    pending = false
    // Like the real reconciler, a pod stays in the slice it was put in; a new pod goes to the first slice with room.
    const chunks = new Map<string, { port: number; entries: Array<{ pod: PodRef; condition: EndpointCondition }> }>()
    for (const entry of [...desired.values()].sort((a, b) => (a.pod.name < b.pod.name ? -1 : 1))) {
      const port = entry.pod.port ?? options.port
      let name = placement.get(entry.pod.name)
      if (name === undefined) {
        let index = 0
        while ((counts.get(sliceName(port, index)) ?? 0) >= MAX_ENDPOINTS_PER_SLICE) index++
        name = sliceName(port, index)
        placement.set(entry.pod.name, name)
        counts.set(name, (counts.get(name) ?? 0) + 1)
      }
      if (!chunks.has(name)) chunks.set(name, { port, entries: [] })
      chunks.get(name)!.entries.push(entry)
    }
    const names: string[] = []
    for (const [name, { port, entries: chunk }] of [...chunks].sort(([a], [b]) => (a < b ? -1 : 1))) {
      names.push(name)
      const slice: EndpointSlice = {
        kind: 'EndpointSlice',
        apiVersion: 'discovery.k8s.io/v1',
        metadata: {
          name,
          namespace: kube.namespace,
          labels: {
            'kubernetes.io/service-name': options.service,
            'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
          },
        },
        addressType: 'IPv4',
        endpoints: chunk.map(({ pod, condition }) => endpointFor(pod, condition)),
        ports: [{ name: 'http', protocol: 'TCP', port }],
      } as EndpointSlice
      const before = kube.get(name)
      if (before && JSON.stringify(before.endpoints) === JSON.stringify(slice.endpoints)) continue
      options.onSliceWrite?.(name, now())
      kube.upsert(slice)
    }
    for (const name of sliceNames) {
      if (names.includes(name)) continue
      options.onSliceWrite?.(name, now())
      kube.remove(name)
    }
    sliceNames = names
  }

  function forget(pod: PodRef) {
    desired.delete(pod.name)
    const name = placement.get(pod.name)
    if (name === undefined) return
    placement.delete(pod.name)
    counts.set(name, (counts.get(name) ?? 1) - 1)
  }

  function later(change: () => void, what: string, pod: PodRef) {
    const timer = setTimeout(() => {
      timers.delete(timer)
      change()
      options.onEvent?.(what, { pod: pod.name })
      // Several changes due at the same moment make one slice write, as the controller's work queue does.
      if (!pending) {
        pending = true
        queueMicrotask(sync)
      }
    }, options.controllerDelayMs)
    timers.add(timer)
  }

  return {
    kube,
    /** The slice a pod's endpoint is in (once placed). */
    sliceOf(pod: PodRef): string | undefined {
      return placement.get(pod.name)
    },
    /** Seeds ready pods at once, without delay (the state before the scenario starts). */
    seed(pods: PodRef[]) {
      for (const pod of pods) desired.set(pod.name, { pod, condition: 'ready' })
      sync()
    },
    /** The pod's readiness probe passed: its endpoint appears as ready after the controller delay. */
    podReady(pod: PodRef) {
      later(() => desired.set(pod.name, { pod, condition: 'ready' }), 'endpoint_ready_in_api', pod)
    },
    /** deletionTimestamp set: the endpoint turns ready=false, serving=true, terminating=true. */
    podDeleted(pod: PodRef) {
      later(
        () => {
          if (desired.has(pod.name)) desired.set(pod.name, { pod, condition: 'terminating' })
        },
        'endpoint_not_ready_in_api',
        pod,
      )
    },
    /** Every container exited and the Pod object is gone: the endpoint leaves the slice. */
    podGone(pod: PodRef) {
      later(() => forget(pod), 'endpoint_removed_in_api', pod)
    },
    /** Applies a batch of pod changes now (no delay); returns the time the slices were written. */
    applyNow(changes: Array<{ pod: PodRef; condition: EndpointCondition | 'gone' }>): number {
      for (const { pod, condition } of changes) {
        if (condition === 'gone') forget(pod)
        else desired.set(pod.name, { pod, condition })
      }
      const at = now()
      sync()
      return at
    },
    async close() {
      for (const timer of timers) clearTimeout(timer)
      await kube.close()
    },
  }
}
