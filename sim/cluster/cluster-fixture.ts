/**
 * Wires a real control plane (./cluster.ts) into an ava test file: one plane per file, started in `before` and
 * stopped in `after.always`, its logs kept (and their folder printed) when any test of the file failed. Tests
 * isolate themselves by namespace. Plus the pieces every cluster test repeats: a namespace with the project's
 * RBAC (kustomize build of manifests/base), a ready pod behind Services, and the sidecar bundle started as that
 * pod's sidecar, with a TokenRequest token bound to the pod and the cluster CA, as the kubelet would mount them.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { TestFn } from 'ava'
import { type Cluster, type ClusterOptions, startCluster } from './cluster.ts'
import type { KubeObject } from './kube-admin.ts'
import { waitFor } from './kube-admin.ts'
import { createNamespace, createPod, endpointsOf, ensureNode, requestPodToken, setPodStatus } from './kubelet.ts'
import { render } from './manifests.ts'
import { type Sidecar, startSidecar } from '../fakes/sidecar-process.ts'

export function useCluster(test: TestFn, options: ClusterOptions = {}): () => Cluster {
  let cluster: Cluster | undefined
  let failed = false
  test.serial.before(async (t) => {
    cluster = await startCluster(options)
    const { timings } = cluster
    t.log(
      `control plane ready in ${(timings.total! / 1000).toFixed(1)} s (etcd ${(timings.etcd! / 1000).toFixed(1)} s, kube-apiserver ${(timings.apiserver! / 1000).toFixed(1)} s, kube-controller-manager ${(timings.controllerManager! / 1000).toFixed(1)} s)`,
    )
    await ensureNode(cluster.admin)
  })
  test.afterEach.always((t) => {
    if (!t.passed) failed = true
  })
  test.after.always(async (t) => {
    if (cluster === undefined) return
    await cluster.stop({ keepLogs: failed })
    if (failed) {
      t.log(`control-plane logs kept in ${cluster.dir}`)
      process.stderr.write(`cluster tests failed: control-plane logs kept in ${cluster.dir}\n`)
    }
  })
  return () => {
    if (cluster === undefined) throw new Error('the control plane did not start (see the before hook)')
    return cluster
  }
}

/** A fresh namespace (unique name) with the project's Role, RoleBinding and ServiceAccount from manifests/base. */
export async function namespaceWithRbac(
  cluster: Cluster,
  prefix: string,
  { role }: { role?: (role: KubeObject) => KubeObject } = {},
): Promise<string> {
  const namespace = `${prefix}-${randomBytes(3).toString('hex')}`
  await createNamespace(cluster.admin, namespace)
  for (const object of render('base') as KubeObject[])
    await cluster.admin.apply(object.kind === 'Role' && role ? role(structuredClone(object)) : object, namespace)
  return namespace
}

export async function createService(
  cluster: Cluster,
  namespace: string,
  name: string,
  selector: Record<string, string>,
  extra: Record<string, unknown> = {},
): Promise<KubeObject> {
  return cluster.admin.apply(
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name },
      spec: { selector, ports: [{ name: 'http', port: 80, targetPort: 8080 }], ...extra },
    },
    namespace,
  )
}

let nextIp = 1
/** A pod address from 198.18.0.0/15 (the benchmarking range), unique within this test process. */
export function podIp(): string {
  const n = nextIp++ + (process.pid % 200) * 250
  return `198.18.${Math.floor(n / 250) % 256}.${(n % 250) + 1}`
}

/** The IPv6 twin of an IPv4 pod address, from 2001:2::/48 (the IPv6 benchmarking range). */
export function podIpv6(ipv4: string): string {
  const [, , c, d] = ipv4.split('.').map(Number) as [number, number, number, number]
  return `2001:2::${c.toString(16)}:${d.toString(16)}`
}

export type ReadyPod = {
  pod: KubeObject
  name: string
  namespace: string
  uid: string
  /** POD_IP: one address, or two comma-separated */ ip: string
}

/** A pod bound to the node, Running and Ready with one IP (two if dual-stack); waits until `services` slices list it ready. */
export async function readyPod(
  cluster: Cluster,
  namespace: string,
  name: string,
  {
    labels = { app: name },
    services = 0,
    serviceAccountName = 'drain-coordinator',
    spec,
    dualStack = false,
  }: {
    labels?: Record<string, string>
    services?: number
    serviceAccountName?: string
    spec?: Record<string, unknown>
    dualStack?: boolean
  } = {},
): Promise<ReadyPod> {
  const pod = await createPod(cluster.admin, {
    name,
    namespace,
    labels,
    serviceAccountName,
    terminationGracePeriodSeconds: 60,
    ...(spec ? { spec } : {}),
  })
  const ipv4 = podIp()
  const ips = dualStack ? [ipv4, podIpv6(ipv4)] : [ipv4]
  // POD_IP as the Downward API writes status.podIPs: comma-separated.
  const ip = ips.join(',')
  await setPodStatus(cluster.admin, namespace, name, { ips, ready: true })
  const uid = pod.metadata.uid!
  if (services > 0) {
    await waitFor(`pod ${namespace}/${name} ready in ${services} EndpointSlice(s)`, async () => {
      const endpoints = await endpointsOf(cluster.admin, namespace, uid)
      return endpoints.filter((e) => e.conditions.ready === true).length >= services ? endpoints : undefined
    })
  }
  return { pod, name, namespace, uid, ip }
}

export type PodSidecar = Sidecar & { tokenFile: string; rotateToken(token: string): Promise<void> }

/** The sidecar bundle as this pod's sidecar: its Downward API env, a pod-bound token (or `token`) and the cluster CA. */
export async function startPodSidecar(
  cluster: Cluster,
  pod: ReadyPod,
  env: Record<string, string> = {},
  { serviceAccount = 'drain-coordinator', waitReady = true, token }: { serviceAccount?: string; waitReady?: boolean; token?: string } = {},
): Promise<PodSidecar> {
  const secrets = join(cluster.dir, 'pods', pod.namespace, pod.name)
  await mkdir(secrets, { recursive: true })
  const tokenFile = join(secrets, 'token')
  // Written then renamed, as the kubelet swaps its projected volume: the sidecar never reads half a token.
  const rotateToken = async (token: string) => {
    await writeFile(`${tokenFile}.new`, token)
    await rename(`${tokenFile}.new`, tokenFile)
  }
  await rotateToken(token ?? (await requestPodToken(cluster.admin, pod.namespace, serviceAccount, pod.pod)))
  const sidecar = await startSidecar(
    {
      DRAIN_KUBE_API_URL: cluster.apiUrl,
      DRAIN_KUBE_CA_FILE: cluster.caFile,
      DRAIN_KUBE_TOKEN_FILE: tokenFile,
      POD_NAMESPACE: pod.namespace,
      POD_NAME: pod.name,
      POD_UID: pod.uid,
      POD_IP: pod.ip,
      DRAIN_SETTLE: '1s',
      DRAIN_TIMEOUT: '30s',
      DRAIN_FINAL_SCRAPE_WAIT: '0',
      ...env,
    },
    { waitReady },
  )
  return Object.assign(sidecar, { tokenFile, rotateToken })
}

export type HookAnswer = { status: number; body: Record<string, any>; at: number }

/** Calls /prestop as the kubelet does after the delete; resolves with the answer and when it came. */
export async function callHook(sidecar: Sidecar): Promise<HookAnswer> {
  const response = await fetch(`${sidecar.url}/prestop`, { signal: AbortSignal.timeout(120_000) })
  const body = (await response.json()) as Record<string, any>
  return { status: response.status, body, at: performance.now() }
}
