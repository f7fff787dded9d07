/**
 * A pod of the kube-proxy data plane (sim/data-plane.ts): its network namespace on the run's bridge, the Pod in the
 * API (in the Service `web`'s selector, app=web), the app in the namespace and, if asked, the sidecar beside it with
 * the pod's own service-account token. Shared by the data-plane scenario and its cluster test
 * (test/cluster/data-plane.test.ts), so the test checks the pods the scenario measures.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createPod, requestPodToken } from './cluster/kubelet.ts'
import { type Child, SIM_DIR, startChild } from './common.ts'
import type { DataPlane } from './data-plane.ts'
import { BUNDLE } from './fakes/sidecar-process.ts'
import { untilHealthy } from './sidecar-child.ts'

export const APP_PORT = 8080
export const DRAIN_PORT = 9090

export type DataPlanePodOptions = {
  name: string
  namespace: string
  graceSeconds: number
  /** The app's settings beyond its address (SIM_WORK_MS, SIM_SHUTDOWN_KEEPALIVE, SIM_SIGTERM). */
  appEnv: Record<string, string>
  /**
   * The sidecar's drain settings beyond its pod, API server and port (DRAIN_SETTLE, DRAIN_TIMEOUT, DRAIN_QUIET_PERIOD,
   * ...), given the pod's address; without it the pod has no sidecar.
   */
  sidecarEnv?: (ip: string) => Record<string, string>
}

export type DataPlanePod = { name: string; uid: string; ip: string; netns: string; app: Child; sidecar: Child | undefined }

/** Starts the pod and resolves once its app listens and its sidecar (if any) is healthy; killAllChildren() stops both. */
export async function startDataPlanePod(dp: DataPlane, options: DataPlanePodOptions): Promise<DataPlanePod> {
  const { cluster, network } = dp
  const { name, namespace } = options
  const host = dp.takeHost()
  const ip = `${network.prefix}.${host}`
  const netns = (await network.addPod(host))!
  const pod = await createPod(cluster.admin, {
    name,
    namespace,
    labels: { app: 'web' },
    serviceAccountName: 'drain-coordinator',
    terminationGracePeriodSeconds: options.graceSeconds,
  })
  const uid = pod.metadata.uid!
  const app = startChild(
    `app ${name}`,
    [join(SIM_DIR, 'app-server.ts')],
    { SIM_HOST: ip, SIM_PORT: String(APP_PORT), ...options.appEnv, NODE_NO_WARNINGS: '1' },
    netns,
  )
  let sidecar: Child | undefined
  if (options.sidecarEnv) {
    const secrets = join(cluster.dir, 'pods', namespace)
    await mkdir(secrets, { recursive: true })
    const tokenFile = join(secrets, `${name}.token`)
    await writeFile(tokenFile, await requestPodToken(cluster.admin, namespace, 'drain-coordinator', pod))
    sidecar = startChild(
      `sidecar ${name}`,
      [BUNDLE],
      {
        DRAIN_KUBE_API_URL: dp.relay.url,
        DRAIN_KUBE_CA_FILE: cluster.caFile,
        DRAIN_KUBE_TOKEN_FILE: tokenFile,
        POD_NAMESPACE: namespace,
        POD_NAME: name,
        POD_UID: uid,
        POD_IP: ip,
        HOST_IP: network.nodeIp!,
        DRAIN_PORT: String(DRAIN_PORT),
        DRAIN_HOST: ip,
        DRAIN_FINAL_SCRAPE_WAIT: '0',
        ...options.sidecarEnv(ip),
      },
      netns,
    )
  }
  await app.waitFor('listening', 15_000)
  if (sidecar) await untilHealthy(sidecar, `http://${ip}:${DRAIN_PORT}/healthz`, 20_000)
  return { name, uid, ip, netns, app, sidecar }
}
