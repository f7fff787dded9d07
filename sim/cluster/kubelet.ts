/**
 * The tests play the kubelet through the API, as upstream's integration test of the EndpointSlice controller does
 * (TestEndpointSliceTerminating): a Node object, pods bound to it by spec.nodeName (there is no scheduler), their
 * IPs and readiness written to pods/status, deletion with a grace period, and, when "the containers have exited",
 * the final delete with grace 0 and the pod's UID as precondition, as the kubelet's status manager sends it.
 */
import { type KubeAdmin, type KubeObject, waitFor } from './kube-admin.ts'

export const NODE_NAME = 'node-1'

/** The EndpointSlice controller skips pods whose Node does not exist (unless publishNotReadyAddresses). */
export async function ensureNode(admin: KubeAdmin, name = NODE_NAME): Promise<void> {
  try {
    await admin.create('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } })
  } catch (error) {
    if ((error as { status?: number }).status !== 409) throw error
  }
}

export async function createNamespace(admin: KubeAdmin, name: string): Promise<void> {
  await admin.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } })
  // Pods need the namespace's `default` ServiceAccount (admission), which the serviceaccount controller makes.
  await waitFor(`ServiceAccount ${name}/default`, () => admin.get(`/api/v1/namespaces/${name}/serviceaccounts/default`))
}

export type PodSpecOptions = {
  name: string
  namespace: string
  labels?: Record<string, string>
  serviceAccountName?: string
  terminationGracePeriodSeconds?: number
  /** A whole pod spec to start from (e.g. a rendered Deployment's template); nodeName is set on top. */
  spec?: Record<string, unknown>
}

/** Creates a pod bound to the node; returns it as the API server stored it (uid set). */
export async function createPod(admin: KubeAdmin, options: PodSpecOptions): Promise<KubeObject> {
  const spec = options.spec ?? { containers: [{ name: 'app', image: 'example.invalid/app:1' }] }
  return admin.create(`/api/v1/namespaces/${options.namespace}/pods`, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: options.name, labels: options.labels ?? {} },
    spec: {
      ...spec,
      nodeName: NODE_NAME,
      ...(options.serviceAccountName ? { serviceAccountName: options.serviceAccountName } : {}),
      ...(options.terminationGracePeriodSeconds === undefined
        ? {}
        : { terminationGracePeriodSeconds: options.terminationGracePeriodSeconds }),
    },
  })
}

/** Running, with this IP (podIP = podIPs[0], as the kubelet writes them) and the Ready condition. */
export async function setPodStatus(
  admin: KubeAdmin,
  namespace: string,
  name: string,
  { ips, ready }: { ips: string[]; ready: boolean },
): Promise<KubeObject> {
  return admin.patch(`/api/v1/namespaces/${namespace}/pods/${name}/status`, {
    status: {
      phase: 'Running',
      podIP: ips[0],
      podIPs: ips.map((ip) => ({ ip })),
      conditions: [
        { type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
      ],
    },
  })
}

/** The graceful delete a rollout sends: the pod stays, Terminating, with deletionTimestamp = now + grace. */
export async function deletePodGracefully(
  admin: KubeAdmin,
  namespace: string,
  name: string,
  gracePeriodSeconds: number,
): Promise<KubeObject> {
  return admin.delete(`/api/v1/namespaces/${namespace}/pods/${name}`, { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds })
}

/** "The containers have exited": the kubelet's final delete, grace 0, guarded by the UID against a same-name pod. */
export async function finishPod(admin: KubeAdmin, namespace: string, name: string, uid: string): Promise<void> {
  await admin.delete(`/api/v1/namespaces/${namespace}/pods/${name}`, {
    kind: 'DeleteOptions',
    apiVersion: 'v1',
    gracePeriodSeconds: 0,
    preconditions: { uid },
  })
}

/** A TokenRequest bound to the pod, as the kubelet mounts for it (the pod must run as that ServiceAccount). */
export async function requestPodToken(
  admin: KubeAdmin,
  namespace: string,
  serviceAccount: string,
  pod: KubeObject,
  expirationSeconds = 600,
): Promise<string> {
  const answer = await admin.create(`/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { expirationSeconds, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid } },
  })
  return answer.status.token as string
}

/** The pod's endpoint as the EndpointSlice controller wrote it, in every slice of the namespace that holds it. */
export async function endpointsOf(
  admin: KubeAdmin,
  namespace: string,
  podUid: string,
): Promise<Array<{ slice: string; service: string | undefined; conditions: Record<string, boolean | undefined> }>> {
  const list = await admin.get(`/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`)
  const found = []
  for (const slice of list.items as KubeObject[]) {
    for (const endpoint of slice.endpoints ?? []) {
      if (endpoint.targetRef?.uid === podUid)
        found.push({
          slice: slice.metadata.name!,
          service: slice.metadata.labels?.['kubernetes.io/service-name'],
          conditions: endpoint.conditions ?? {},
        })
    }
  }
  return found
}
