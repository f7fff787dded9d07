/**
 * kube-proxy as the data plane: the rollout of sim/scenario.ts on a real control plane (etcd, kube-apiserver,
 * kube-controller-manager: sim/cluster/cluster.ts) with a real kube-proxy (nftables or iptables mode: its rules are
 * read in sim/proxy-rules.ts) in a node network namespace. Clients in the node namespace connect to the Service's
 * ClusterIP (198.19.0.0/16); the kernel's NAT and conntrack pick the pod, and keep an established connection on its
 * pod until one side closes it. Pods are namespaces on the run's bridge (sim/netns.ts), created through the API
 * (the EndpointSlice controller writes their slices, kube-proxy follows them); the simulated kubelet deletes them as
 * the cluster tests do: a graceful DELETE, the hook and SIGTERM, and the final DELETE with grace 0 once the
 * containers have exited.
 *
 * Where things run: the host side (this process) holds the node address <k>.1 (the kubelet's hook calls, HOST_IP)
 * and a relay from <k>.1 to the API server on loopback; the node namespace (<k>.3) holds kube-proxy and the clients;
 * each pod namespace holds its app and sidecar.
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { type Cluster, startCluster } from './cluster/cluster.ts'
import { createService, namespaceWithRbac } from './cluster/cluster-fixture.ts'
import { type Component, startComponent } from './cluster/component.ts'
import { deletePodGracefully, ensureNode, finishPod, NODE_NAME, setPodStatus } from './cluster/kubelet.ts'
import { writeKubeconfig } from './cluster/pki.ts'
import { toolBinary } from '../scripts/tools.mjs'
import { killAllChildren, median, now, SIM_DIR, sleep, startChild, within } from './common.ts'
import { terminatePod, type SimPod, type Termination } from './kubelet.ts'
import type { LoadResult } from './load.ts'
import { createNetwork } from './netns.ts'
import { listRules, type ProxyMode, proxyPath, rulesRouteTo, SYSTEM_PATH } from './proxy-rules.ts'
import { APP_PORT, DRAIN_PORT, startDataPlanePod } from './data-plane-pod.ts'
import { startRelay } from './relay.ts'
import { sidecarLogs } from './sidecar-child.ts'
import { QUIET_GATE_SETTLE_MS, ROLLOUT_DEFAULTS, type Strategy } from './scenario-options.ts'

const SYSTEM_ENV = { ...process.env, PATH: SYSTEM_PATH }
/** Keep-alive clients, each with its own connection: conntrack pins each to one pod, about 4 per pod of 3. */
const KEEPALIVE_CLIENTS = 12

export type DataPlane = Awaited<ReturnType<typeof startDataPlane>>

/**
 * The network, the control plane, the relay and kube-proxy in `proxyMode` (nftables by default), once for every
 * scenario of a run. Everything kube-proxy writes is in the node namespace, which close() deletes.
 */
export async function startDataPlane({
  log = () => {},
  proxyMode = 'nftables',
}: { log?: (line: string) => void; proxyMode?: ProxyMode } = {}) {
  const network = await createNetwork({ loopbackPrefix: '' })
  if (network.mode !== 'netns') throw new Error('the kube-proxy data plane needs root: kube-proxy and the pods run in network namespaces')
  let cluster: Cluster | undefined
  let relay: Awaited<ReturnType<typeof startRelay>> | undefined
  let kubeProxy: Component | undefined
  // The one way down, whether start-up failed part way (logs kept) or the run is over.
  const close = async ({ keepLogs = false } = {}) => {
    await kubeProxy?.stop().catch(() => {})
    await relay?.close().catch(() => {})
    await cluster?.stop({ keepLogs }).catch(() => {})
    await network.close()
  }
  try {
    const nodeIp = network.nodeIp!
    cluster = await startCluster({ certificateIps: [nodeIp] })
    log(`real control plane ready in ${(cluster.timings.total! / 1_000).toFixed(1)} s`)
    relay = await startRelay({ host: nodeIp, target: { host: '127.0.0.1', port: Number(new URL(cluster.apiUrl).port) } })
    await ensureNode(cluster.admin)
    const nodeNs = (await network.addPod(3))!
    const nodeNsIp = `${network.prefix}.3`
    const kubeconfig = await writeKubeconfig(join(cluster.dir, 'kube-proxy.kubeconfig'), relay.url, cluster.caFile, cluster.pki.admin)
    // kube-proxy waits up to 30 s for its Node to have an address before it starts.
    await cluster.admin.patch(`/api/v1/nodes/${NODE_NAME}/status`, { status: { addresses: [{ type: 'InternalIP', address: nodeNsIp }] } })
    kubeProxy = startComponent(
      'kube-proxy',
      'env',
      [
        `PATH=${await proxyPath(proxyMode, cluster.dir)}`,
        'ip',
        'netns',
        'exec',
        nodeNs,
        toolBinary('kube', 'kube-proxy'),
        `--kubeconfig=${kubeconfig}`,
        `--proxy-mode=${proxyMode}`,
        `--hostname-override=${NODE_NAME}`,
        // The pod range; a client outside it is masqueraded. The node namespace's clients are inside it.
        '--cluster-cidr=198.18.0.0/16',
        // kube-proxy's idea of the node's IP, not a listen address.
        `--bind-address=${nodeNsIp}`,
        `--healthz-bind-address=${nodeNsIp}:10256`,
        '--metrics-bind-address=127.0.0.1:10249',
        // 0: leave the conntrack sysctls alone (global ones cannot be written from a child namespace).
        '--conntrack-max-per-core=0',
        '--conntrack-tcp-timeout-established=0s',
        '--conntrack-tcp-timeout-close-wait=0s',
        '--v=1',
      ],
      cluster.dir,
    )
    const until = now() + 60_000
    for (;;) {
      if (!kubeProxy.running) throw new Error(`kube-proxy exited:\n${kubeProxy.tail()}`)
      const ok = await fetch(`http://${nodeNsIp}:10256/healthz`, { signal: AbortSignal.timeout(1_000) }).then(
        (r) => r.ok,
        () => false,
      )
      if (ok) break
      if (now() > until) throw new Error(`kube-proxy not healthy within 60 s:\n${kubeProxy.tail()}`)
      await sleep(200)
    }
    log(`kube-proxy (${proxyMode}) healthy in the node namespace`)
    let nextHost = 10
    return {
      network,
      cluster,
      relay,
      nodeNs,
      nodeNsIp,
      kubeProxy,
      proxyMode,
      /** A fresh pod address on the bridge (each scenario's pods get their own). */
      takeHost() {
        if (nextHost > 254) throw new Error("out of pod addresses on the run's /24")
        return nextHost++
      },
      /** kube-proxy's rules in the node namespace as text: its nftables table, or the nat table in iptables mode. */
      rules(): string {
        return listRules(nodeNs, proxyMode).text
      },
      /** Whether kube-proxy sends new connections to this address (sim/proxy-rules.ts says how each mode is read). */
      routesTo(ip: string): boolean {
        return rulesRouteTo(proxyMode, this.rules(), ip)
      },
      /** Established TCP connections conntrack still maps to this pod address (in the node namespace, where clients are). */
      establishedTo(ip: string): number {
        const out =
          spawnSync('ip', ['netns', 'exec', nodeNs, 'conntrack', '-L', '-p', 'tcp', '--state', 'ESTABLISHED', '--reply-src', ip], {
            encoding: 'utf8',
            env: SYSTEM_ENV,
          }).stdout ?? ''
        return out.split('\n').filter((line) => line.startsWith('tcp')).length
      },
      close,
    }
  } catch (error) {
    await close({ keepLogs: true })
    throw error
  }
}

export type DataPlaneOptions = {
  strategy: Exclude<Strategy, 'dc-poll'>
  /** Clients keep connections alive (a pool), or open one per request. */
  keepAlive: boolean
  replicas?: number
  ratePerSecond?: number
  workMs?: number
  graceMs?: number
  sleepMs?: number
  settleMs?: number
  quietPeriodMs?: number
  warmupMs?: number
  /** What the app does on its shutdown URL (dc-quiet): 'off' stops keeping connections alive. */
  appKeepAlive?: 'off' | 'on'
  /** What the app does on SIGTERM: 'graceful' (finish in-flight requests, close keep-alive connections, exit) or 'exit' at once. */
  appSigterm?: 'graceful' | 'exit'
}

export type DataPlaneResult = {
  strategy: string
  keepAlive: boolean
  appKeepAlive: 'off' | 'on'
  appSigterm: 'graceful' | 'exit'
  load: Omit<LoadResult, 'failures'> & { details: Record<string, number> }
  hookHoldMs: { median: number | undefined; max: number | undefined }
  arrivedAfterSigterm: number
  drains: Array<{ pod: string; outcome: unknown; settle: unknown }>
  /** From the graceful DELETE until kube-proxy's rules no longer name the old pod. */
  rulesUpdatedMs: number | undefined
  /** Established connections conntrack still pinned to the old pod when the kubelet sent SIGTERM. */
  pinnedAtSigterm: number | undefined
}

export async function runDataPlaneScenario(dp: DataPlane, options: DataPlaneOptions): Promise<DataPlaneResult> {
  const o = {
    ...ROLLOUT_DEFAULTS,
    appSigterm: 'graceful' as 'graceful' | 'exit',
    ...(options.strategy === 'dc-quiet' ? { settleMs: QUIET_GATE_SETTLE_MS } : {}),
    ...options,
  }
  const { cluster } = dp
  const usesSidecar = o.strategy === 'dc-watch' || o.strategy === 'dc-quiet'
  const ns = await namespaceWithRbac(cluster, `dp-${o.strategy}`)
  const service = await createService(cluster, ns, 'web', { app: 'web' })
  const clusterIp = service.spec.clusterIP as string
  try {
    const makePod = async (name: string, withSidecar: boolean): Promise<SimPod & { netns: string }> => {
      const pod = await startDataPlanePod(dp, {
        name,
        namespace: ns,
        graceSeconds: o.graceMs / 1_000,
        appEnv: { SIM_WORK_MS: String(o.workMs), SIM_SHUTDOWN_KEEPALIVE: o.appKeepAlive, SIM_SIGTERM: o.appSigterm },
        ...(withSidecar
          ? {
              sidecarEnv: (ip: string) => ({
                DRAIN_SETTLE: `${o.settleMs}ms`,
                DRAIN_TIMEOUT: `${o.settleMs + 5_000}ms`,
                ...(o.strategy === 'dc-quiet'
                  ? {
                      DRAIN_QUIET_PERIOD: `${o.quietPeriodMs}ms`,
                      DRAIN_APP_PORTS: String(APP_PORT),
                      DRAIN_APP_SHUTDOWN_URL: `http://${ip}:${APP_PORT}/shutdown`,
                    }
                  : { DRAIN_QUIET_PERIOD: '0' }),
              }),
            }
          : {}),
      })
      const preStop =
        o.strategy === 'sleep'
          ? { kind: 'sleep' as const, ms: o.sleepMs }
          : usesSidecar
            ? { kind: 'httpGet' as const, url: `http://${pod.ip}:${DRAIN_PORT}/prestop` }
            : { kind: 'none' as const }
      return { ...pod, preStop }
    }
    const oldPods: Array<SimPod & { netns: string }> = []
    for (let i = 0; i < o.replicas; i++) oldPods.push(await makePod(`web-old-${i}`, usesSidecar))
    const newPod = await makePod('web-new-0', false)
    for (const pod of oldPods) await setPodStatus(cluster.admin, ns, pod.name, { ips: [pod.ip], ready: true })
    await until('kube-proxy routes to every old pod', () => oldPods.every((p) => dp.routesTo(p.ip)), 30_000)

    const load = startChild(
      'clients',
      [join(SIM_DIR, 'load-child.ts')],
      {
        SIM_URL: `http://${clusterIp}/`,
        SIM_RATE: String(o.ratePerSecond),
        SIM_KEEPALIVE_SHARE: o.keepAlive ? '1' : '0',
        SIM_KEEPALIVE_CLIENTS: String(KEEPALIVE_CLIENTS),
        NODE_NO_WARNINGS: '1',
      },
      dp.nodeNs,
    )
    await load.waitFor('load_started', 15_000)
    await sleep(o.warmupMs)

    // The rollout: the new pod becomes ready, then the first old pod is deleted and terminated by the kubelet.
    await setPodStatus(cluster.admin, ns, newPod.name, { ips: [newPod.ip], ready: true })
    const old = oldPods[0]!
    const deletedAt = now()
    await deletePodGracefully(cluster.admin, ns, old.name, o.graceMs / 1_000)
    let rulesUpdatedMs: number | undefined
    const watchRules = until('kube-proxy drops the old pod', () => !dp.routesTo(old.ip), 30_000).then(
      () => (rulesUpdatedMs = now() - deletedAt),
      () => {},
    )
    let finished: Promise<void> = Promise.resolve()
    let pinnedAtSigterm: number | undefined
    const termination: Termination | undefined = await within(
      terminatePod(old, {
        graceMs: o.graceMs,
        onEvent: (event) => {
          if (event === 'sigterm') pinnedAtSigterm = dp.establishedTo(old.ip)
        },
        controlPlane: {
          podDeleted: () => {},
          podGone: () => void (finished = finishPod(cluster.admin, ns, old.name, old.uid).catch(() => {})),
        },
      }),
      o.graceMs + 15_000,
    )
    if (!termination) throw new Error('the termination did not finish within the grace period + 15 s')
    await finished
    await watchRules
    await sleep(1_000)
    load.process.kill('SIGTERM')
    const result = (await load.waitFor('result', 15_000)) as unknown as LoadResult
    const details: Record<string, number> = {}
    for (const f of result.failures) details[`${f.kind}: ${f.detail}`] = (details[`${f.kind}: ${f.detail}`] ?? 0) + 1
    const { failures: _omit, ...totals } = result
    const drains = sidecarLogs(old.sidecar)
      .filter((log) => log.event === 'drain_finished')
      .map((log) => ({ pod: old.name, outcome: log.outcome, settle: (log.phases as { settle?: unknown } | undefined)?.settle }))
    const hold = termination.hookStartedAt === undefined ? undefined : termination.hookEndedAt! - termination.hookStartedAt
    return {
      strategy: o.strategy,
      keepAlive: o.keepAlive,
      appKeepAlive: o.appKeepAlive,
      appSigterm: o.appSigterm,
      load: { ...totals, details },
      hookHoldMs: { median: median(hold === undefined ? [] : [hold]), max: hold },
      arrivedAfterSigterm: Number(old.app.events.find((e) => e.event === 'exiting')?.arrivedAfterSigterm ?? 0),
      drains,
      rulesUpdatedMs,
      pinnedAtSigterm,
    }
  } finally {
    await killAllChildren()
    await cluster.admin.delete(`/api/v1/namespaces/${ns}`).catch(() => {})
  }
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = now() + timeoutMs
  while (!check()) {
    if (now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await sleep(100)
  }
}
