/**
 * A real Kubernetes control plane for the cluster test tier, as plain child processes on loopback: etcd,
 * kube-apiserver (RBAC, service-account tokens, client-certificate admin) and kube-controller-manager running only
 * the endpointslice, serviceaccount and namespace controllers (never the default set: node-lifecycle,
 * taint-eviction and pod-GC would evict the pods of a node that has no kubelet). Binaries come from the test tools
 * kube and etcd (scripts/tools.mjs). Every port is chosen free, so test files can each run their own plane at once.
 * See docs/real-cluster.md for the flags and why.
 */
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { toolBinary } from '../../scripts/tools.mjs'
import { sleep } from '../common.ts'
import { type Component, startComponent } from './component.ts'
import { createRunDir, keepRunDir } from './leftovers.ts'
import { createKubeAdmin, type KubeAdmin, waitFor } from './kube-admin.ts'
import { makePki, type Pki, writeKubeconfig } from './pki.ts'
import { freePort } from '../fakes/sidecar-process.ts'

/**
 * ClusterIPs: from the benchmarking ranges (IPv4 RFC 2544, IPv6 RFC 5180), never a network a host might really use.
 * Dual-stack, so a Service may ask for both families; Services are IPv4-only unless they do.
 */
export const SERVICE_CIDR = '198.19.0.0/16,2001:2::/112'
const START_TIMEOUT_MS = 120_000

export type ClusterOptions = {
  /** Addresses besides loopback the API server's certificate must hold, e.g. a relay's in a network namespace. */
  certificateIps?: string[]
}

export type Cluster = Awaited<ReturnType<typeof startCluster>>

export async function startCluster(options: ClusterOptions = {}) {
  const started = performance.now()
  // Sweeps the leftovers of runs killed outright first (./leftovers.ts).
  const dir = await createRunDir()
  // Named roles, stopped in reverse start order.
  const components: Roles = {}
  const timings: Record<string, number> = {}
  try {
    const pki = await makePki(dir, options.certificateIps)
    timings.pki = performance.now() - started

    let mark = performance.now()
    const etcdPorts = { client: await freePort(), peer: await freePort() }
    const etcdUrl = `http://127.0.0.1:${etcdPorts.client}`
    const etcd = await startEtcd(dir, etcdPorts)
    components.etcd = etcd
    timings.etcd = performance.now() - mark

    mark = performance.now()
    const apiserverPort = await freePort()
    const apiUrl = `https://127.0.0.1:${apiserverPort}`
    const admin = createKubeAdmin(apiUrl, pki.caFile, pki.admin)
    const apiserverArgs = kubeApiserverArgs(pki, etcdUrl, apiserverPort)
    let apiserver = await startApiserver(dir, apiserverArgs, admin)
    components.apiserver = apiserver
    timings.apiserver = performance.now() - mark

    mark = performance.now()
    const kubeconfig = await writeKubeconfig(join(dir, 'kcm.kubeconfig'), apiUrl, pki.caFile, pki.controllerManager)
    const controllerManager = startComponent(
      'kube-controller-manager',
      toolBinary('kube', 'kube-controller-manager'),
      [
        `--kubeconfig=${kubeconfig}`,
        '--controllers=endpointslice,serviceaccount,namespace',
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${await freePort()}`,
        '--v=1',
      ],
      dir,
    )
    components.controllerManager = controllerManager
    // Ready when the serviceaccount controller has made `default` (pods need it): its informers have synced.
    await waitFor(
      'ServiceAccount default/default (kube-controller-manager running)',
      async () => {
        if (!controllerManager.running) throw new Error(`kube-controller-manager exited:\n${controllerManager.tail()}`)
        return admin.get('/api/v1/namespaces/default/serviceaccounts/default')
      },
      { timeoutMs: START_TIMEOUT_MS },
    )
    timings.controllerManager = performance.now() - mark
    timings.total = performance.now() - started

    const cluster = {
      dir,
      apiUrl,
      etcdUrl,
      caFile: pki.caFile,
      pki,
      admin,
      /** Milliseconds each start-up step took, and the total. */
      timings,
      etcd,
      get apiserver() {
        return apiserver
      },
      controllerManager,
      /** Kills kube-apiserver (SIGKILL: a crash, no graceful close of watches) and starts it again on its port. */
      async restartApiserver({ downMs = 0 }: { downMs?: number } = {}) {
        await apiserver.kill()
        await admin.reconnect()
        if (downMs > 0) await sleep(downMs)
        apiserver = await startApiserver(dir, apiserverArgs, admin)
        components.apiserver = apiserver
      },
      /** Stops every component in reverse start order; keeps the directory (logs) when `keepLogs`. */
      async stop({ keepLogs = false }: { keepLogs?: boolean } = {}) {
        await stopAll(components)
        await admin.close().catch(() => {})
        if (keepLogs) keepRunDir(dir)
        else await rm(dir, { recursive: true, force: true })
      },
    }
    return cluster
  } catch (error) {
    await stopAll(components)
    keepRunDir(dir)
    throw new Error(`starting the test control plane failed (logs kept in ${dir}): ${(error as Error).message}`, { cause: error })
  }
}

type Roles = { etcd?: Component; apiserver?: Component; controllerManager?: Component }

async function stopAll({ etcd, apiserver, controllerManager }: Roles): Promise<void> {
  for (const component of [controllerManager, apiserver, etcd]) await component?.stop().catch(() => {})
}

function kubeApiserverArgs(pki: Pki, etcdUrl: string, port: number): string[] {
  return [
    `--etcd-servers=${etcdUrl}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${port}`,
    // Without it the address comes from the default route, and with none the API server exits.
    '--advertise-address=127.0.0.1',
    // Loopback is not a valid endpoint address: do not write it into default/kubernetes.
    '--endpoint-reconciler-type=none',
    `--tls-cert-file=${pki.apiserver.cert}`,
    `--tls-private-key-file=${pki.apiserver.key}`,
    `--client-ca-file=${pki.caFile}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki.serviceAccountKey}`,
    `--service-account-signing-key-file=${pki.serviceAccountKey}`,
    // The built-in default, AlwaysAllow, would pass every RBAC test.
    '--authorization-mode=RBAC',
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    '--v=1',
  ]
}

async function startEtcd(dir: string, ports: { client: number; peer: number }): Promise<Component> {
  const client = `http://127.0.0.1:${ports.client}`
  const peer = `http://127.0.0.1:${ports.peer}`
  const etcd = startComponent(
    'etcd',
    toolBinary('etcd'),
    [
      '--name=test',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=test=${peer}`,
      // Skips fsync: only a power loss or kernel crash could lose writes, and the data dies with the test anyway.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    dir,
  )
  try {
    await waitFor(
      'etcd /health',
      async () => {
        if (!etcd.running) throw new Error(`etcd exited:\n${etcd.tail()}`)
        const response = await fetch(`${client}/health`, { signal: AbortSignal.timeout(2_000) })
        const body = (await response.json()) as { health?: string }
        return body.health === 'true' ? true : undefined
      },
      { timeoutMs: START_TIMEOUT_MS, intervalMs: 50 },
    )
  } catch (error) {
    await etcd.stop()
    throw error
  }
  return etcd
}

async function startApiserver(dir: string, args: string[], admin: KubeAdmin): Promise<Component> {
  const apiserver = startComponent('kube-apiserver', toolBinary('kube', 'kube-apiserver'), args, dir)
  try {
    // With the admin certificate: anonymous probes get 403 until RBAC's bootstrap policy is in, which says nothing.
    await waitFor(
      'kube-apiserver /readyz',
      async () => {
        if (!apiserver.running) throw new Error(`kube-apiserver exited:\n${apiserver.tail()}`)
        return (await admin.get('/readyz')) === 'ok' ? true : undefined
      },
      { timeoutMs: START_TIMEOUT_MS, intervalMs: 200 },
    )
  } catch (error) {
    await apiserver.stop()
    throw error
  }
  return apiserver
}
