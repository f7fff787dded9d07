/**
 * One simulated rollout: a Service with `replicas` pods behind the load balancer, steady load, then `rollout`
 * pods replaced one after the other (a new pod becomes ready, an old one is deleted, as a Deployment with
 * maxSurge 1 / maxUnavailable 0 does), each old pod terminated by the simulated kubelet under one strategy:
 *   - no-prestop: no hook; SIGTERM at once.
 *   - sleep:      a fixed preStop sleep (sleepMs).
 *   - dc-watch / dc-poll: drain-coordinator (the built bundle, one process per pod, as a classic sidecar
 *                 container) answering an httpGet preStop hook, in watch or poll mode, with a fixed settle
 *                 (DRAIN_QUIET_PERIOD=0).
 *   - dc-quiet:   drain-coordinator in watch mode with the traffic-quiet gate: DRAIN_SETTLE is the upper bound, the
 *                 app's shutdown URL is called, and each pod serves on its own port (DRAIN_APP_PORTS), as on
 *                 loopback all simulated pods share this machine's network namespace.
 * Run as root, each pod is its own network namespace on 198.18.<k>.0/24 (sim/netns.ts); otherwise pods are loopback
 * addresses in this machine's namespace.
 * Returns the load totals, each termination's timings, the API requests the sidecars made and a timeline.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startFakeEnvoy } from './fakes/fake-envoy.ts'
import { BUNDLE, freePort } from './fakes/sidecar-process.ts'
import { type ChildEvent, killAllChildren, median, now, SIM_DIR, sleep, startChild, within } from './common.ts'
import { startControlPlane, type PodRef } from './control-plane.ts'
import { createNetwork } from './netns.ts'
import { terminatePod, type PreStop, type SimPod, type Termination } from './kubelet.ts'
import { startLoad } from './load.ts'
import {
  QUIET_GATE_SETTLE_MS,
  ROLLOUT_DEFAULTS,
  type ScenarioOptions,
  type ScenarioResult,
  type TimelineEntry,
} from './scenario-options.ts'
import { sidecarLogs, untilHealthy } from './sidecar-child.ts'

export {
  CONDITIONS,
  type Condition,
  type ConditionName,
  QUIET_GATE_SETTLE_MS,
  ROLLOUT_DEFAULTS,
  type ScenarioOptions,
  type ScenarioResult,
  STRATEGIES,
  type Strategy,
  type TimelineEntry,
} from './scenario-options.ts'

export async function runScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const o = {
    ...ROLLOUT_DEFAULTS,
    drainTimeoutMs: 20_000,
    pollIntervalMs: 1_000,
    rolloutGapMs: 500,
    envoy: false,
    probeReady: false,
    addressPrefix: '127.0.1',
    perPodPorts: options.strategy === 'dc-quiet',
    network: 'auto' as 'auto' | 'loopback',
    ...(options.strategy === 'dc-quiet' ? { settleMs: QUIET_GATE_SETTLE_MS, drainTimeoutMs: QUIET_GATE_SETTLE_MS + 5_000 } : {}),
    ...options,
  }
  const rollout = Math.min(o.rollout ?? o.replicas, o.replicas)
  if (o.replicas > 80) throw new Error('at most 80 replicas (addresses .10-.89 and .110-.189 of the prefix)')
  const { strategy, condition } = o
  const usesSidecar = strategy === 'dc-watch' || strategy === 'dc-poll' || strategy === 'dc-quiet'
  if (usesSidecar && !existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run build first`)

  const timeline: TimelineEntry[] = []
  const note = (source: string, event: string, fields: { pod?: unknown; detail?: unknown; at?: number } = {}) =>
    timeline.push({
      at: fields.at ?? now(),
      source,
      event,
      ...(fields.pod === undefined ? {} : { pod: String(fields.pod) }),
      ...(fields.detail === undefined ? {} : { detail: String(fields.detail) }),
    })

  const tmp = await mkdtemp(join(tmpdir(), 'drain-sim-'))
  const cleanups: Array<() => Promise<unknown> | unknown> = [() => rm(tmp, { recursive: true, force: true })]
  const startedAt = now()
  try {
    const network = await createNetwork({ loopbackPrefix: o.addressPrefix, forceLoopback: o.network === 'loopback' })
    // Removed last (cleanups run in reverse), once every process inside the namespaces has been killed.
    cleanups.push(() => network.close())
    const netnsOf = new Map<string, string | undefined>()
    const tokenFile = join(tmp, 'token')
    await writeFile(tokenFile, 'test-token\n')
    const appPort = await freePort()
    const drainPort = await freePort()
    const controlPlane = await startControlPlane({
      service: 'web',
      port: appPort,
      controllerDelayMs: condition.controllerDelayMs,
      // Pods reach the API server at the node's address, as they would a Service's.
      ...(network.nodeIp ? { host: network.nodeIp, certificate: await network.apiCertificate() } : {}),
      onEvent: (event, fields) => note('endpoint-controller', event, fields),
    })
    cleanups.push(() => controlPlane.close())
    // Envoy is the pod's own in a cluster; here one fake serves every pod, at the node's address where pods are namespaces.
    const envoy = o.envoy ? await startFakeEnvoy({ host: network.nodeIp ?? '127.0.0.1' }) : undefined
    if (envoy) cleanups.push(() => envoy.close())

    // Registered before the first child starts, so an error while starting any of them still kills those started.
    cleanups.push(() => killAllChildren())
    const lb = startChild('load-balancer', [join(SIM_DIR, 'load-balancer.ts')], {
      SIM_API_URL: controlPlane.kube.url,
      SIM_CA_FILE: controlPlane.kube.caFile,
      SIM_TOKEN: 'test-token',
      SIM_NAMESPACE: controlPlane.kube.namespace,
      SIM_SERVICE: 'web',
      SIM_LB_LAG_MS: String(condition.lbLagMs),
      NODE_NO_WARNINGS: '1',
      SIM_LB_SOURCE: network.lbIp ?? '',
    })

    const preStop = (ip: string): PreStop =>
      strategy === 'sleep'
        ? { kind: 'sleep', ms: o.sleepMs }
        : usesSidecar
          ? { kind: 'httpGet', url: `http://${ip}:${drainPort}/prestop` }
          : { kind: 'none' }
    const portOf = (pod: PodRef) => pod.port ?? appPort
    const startApp = (pod: PodRef) =>
      startChild(
        `app ${pod.name}`,
        [join(SIM_DIR, 'app-server.ts')],
        {
          SIM_HOST: pod.ip,
          SIM_PORT: String(portOf(pod)),
          SIM_WORK_MS: String(o.workMs),
          SIM_SHUTDOWN_KEEPALIVE: o.appKeepAlive,
          NODE_NO_WARNINGS: '1',
        },
        netnsOf.get(pod.name),
      )
    const gate =
      strategy === 'dc-quiet'
        ? (pod: PodRef) => ({
            DRAIN_QUIET_PERIOD: `${o.quietPeriodMs}ms`,
            DRAIN_APP_PORTS: String(portOf(pod)),
            DRAIN_APP_SHUTDOWN_URL: `http://${pod.ip}:${portOf(pod)}/shutdown`,
            // On loopback every simulated pod, the load balancer and the load generator share this machine's network
            // namespace: the PassiveOpens counter counts all of them, so there it would see traffic all the time.
            ...(network.mode === 'loopback' ? { DRAIN_TRAFFIC_COUNTER: 'off' } : {}),
          })
        : () => ({ DRAIN_QUIET_PERIOD: '0' })
    const startSidecar = (pod: PodRef) =>
      startChild(
        `sidecar ${pod.name}`,
        [BUNDLE],
        {
          DRAIN_KUBE_API_URL: controlPlane.kube.url,
          DRAIN_KUBE_CA_FILE: controlPlane.kube.caFile,
          DRAIN_KUBE_TOKEN_FILE: tokenFile,
          POD_NAMESPACE: controlPlane.kube.namespace,
          POD_NAME: pod.name,
          POD_UID: pod.uid,
          POD_IP: pod.ip,
          DRAIN_SETTLE: `${o.settleMs}ms`,
          DRAIN_TIMEOUT: `${o.drainTimeoutMs}ms`,
          DRAIN_ENDPOINT_MODE: strategy === 'dc-poll' ? 'poll' : 'watch',
          DRAIN_POLL_INTERVAL: `${o.pollIntervalMs}ms`,
          DRAIN_PORT: String(drainPort),
          DRAIN_HOST: pod.ip,
          ...(envoy ? { DRAIN_ENVOY_ADMIN_URL: envoy.url } : {}),
          ...(network.nodeIp ? { HOST_IP: network.nodeIp } : {}),
          ...gate(pod),
        },
        netnsOf.get(pod.name),
      )

    // Old pods (each with its sidecar under a dc strategy) and the new pods that replace them, all started now so
    // process start-up does not compete with the measurement; a new pod joins the Service only when the rollout
    // makes it ready. (New pods get no sidecar: it would sit idle, as nothing deletes them in this run.)
    const podPorts = { old: [] as number[], new: [] as number[] }
    if (o.perPodPorts)
      for (const kind of ['old', 'new'] as const) for (let i = 0; i < o.replicas; i++) podPorts[kind].push(await freePort())
    const ref = (kind: 'old' | 'new', i: number): PodRef => ({
      name: `web-${kind}-${i}`,
      uid: `00000000-0000-4000-8000-${kind === 'old' ? '0' : '1'}${String(i).padStart(11, '0')}`,
      ip: `${network.prefix}.${(kind === 'old' ? 10 : 110) + i}`,
      ...(o.perPodPorts ? { port: podPorts[kind][i]! } : {}),
    })
    const oldPods: SimPod[] = []
    const newPods: SimPod[] = []
    for (const [kind, count] of [
      ['old', o.replicas],
      ['new', rollout],
    ] as const) {
      for (let i = 0; i < count; i++) netnsOf.set(ref(kind, i).name, await network.addPod((kind === 'old' ? 10 : 110) + i))
    }
    for (let i = 0; i < o.replicas; i++) {
      const r = ref('old', i)
      oldPods.push({ ...r, app: startApp(r), sidecar: usesSidecar ? startSidecar(r) : undefined, preStop: preStop(r.ip) })
    }
    for (let i = 0; i < rollout; i++) {
      const r = ref('new', i)
      newPods.push({ ...r, app: startApp(r), sidecar: undefined, preStop: preStop(r.ip) })
    }
    await lb.waitFor('listening', 15_000)
    for (const pod of [...oldPods, ...newPods]) await pod.app.waitFor('listening', 15_000)
    for (const pod of oldPods) if (pod.sidecar) await untilHealthy(pod.sidecar, `http://${pod.ip}:${drainPort}/healthz`, 15_000)
    controlPlane.seed(oldPods)
    const allOld = (e: ChildEvent) => Array.isArray(e.backends) && e.backends.length === o.replicas
    await lb.waitFor('routing', condition.lbLagMs + 15_000, allOld)

    const lbPort = lb.events.find((e) => e.event === 'listening')!.port as number
    const load = startLoad({ url: `http://127.0.0.1:${lbPort}/`, ratePerSecond: o.ratePerSecond })
    note('load', 'load_started', { detail: `${o.ratePerSecond} req/s` })
    await sleep(o.warmupMs)

    const probes: Array<Promise<void>> = []
    const terminations: Array<Promise<Termination>> = []
    let firstDeletionAt: number | undefined
    for (let i = 0; i < rollout; i++) {
      controlPlane.podReady(newPods[i]!)
      note('kubelet', 'new_pod_ready', { pod: newPods[i]!.name })
      const pod = oldPods[i]!
      firstDeletionAt ??= now()
      if (o.probeReady && pod.sidecar) probes.push(probeReady(pod, drainPort, note))
      terminations.push(terminatePod(pod, { graceMs: o.graceMs, controlPlane, onEvent: (event, fields) => note('kubelet', event, fields) }))
      if (i < rollout - 1) await sleep(o.rolloutGapMs)
    }
    const done = await within(Promise.all(terminations), o.graceMs + 15_000)
    if (!done) throw new Error('terminations did not finish within the grace period + 15 s')
    await Promise.all(probes)

    // Keep the load on until the API has dropped the old endpoints and the load balancer has caught up.
    const oldBackends = oldPods.slice(0, rollout).map((p) => `${p.ip}:${portOf(p)}`)
    const converged = (e: ChildEvent) => Array.isArray(e.backends) && !oldBackends.some((b) => (e.backends as string[]).includes(b))
    await lb.waitFor('routing', condition.controllerDelayMs + condition.lbLagMs + 10_000, converged)
    await sleep(300)
    const loadResult = await load.stop()
    note('load', 'load_stopped')

    // Timeline entries from the other processes.
    for (const e of lb.events) {
      if (e.event !== 'routing') continue
      for (const backend of e.removed as string[])
        note('load-balancer', 'stopped_routing', { at: e.at, pod: podOf(backend, oldPods, newPods), detail: backend })
      for (const backend of e.added as string[])
        note('load-balancer', 'started_routing', { at: e.at, pod: podOf(backend, oldPods, newPods), detail: backend })
    }
    const drains: ScenarioResult['drains'] = []
    for (const pod of oldPods.slice(0, rollout)) {
      for (const log of sidecarLogs(pod.sidecar)) {
        const at = Date.parse(String(log.time))
        if (log.event === 'drain_started') note('sidecar', 'drain_started', { at, pod: pod.name, detail: `by ${log.by}` })
        if (log.event === 'phase_finished' && log.phase === 'endpoints')
          note('sidecar', 'endpoint_wait_finished', { at, pod: pod.name, detail: `mode ${log.mode}` })
        if (log.event === 'phase_finished' && log.phase === 'envoy')
          note('sidecar', 'envoy_drained', { at, pod: pod.name, detail: `POST drain_listeners → ${log.httpStatus}` })
        if (log.event === 'drain_finished') {
          note('sidecar', 'drain_finished', { at, pod: pod.name, detail: `outcome ${log.outcome}` })
          const phases = log.phases as Record<string, Record<string, unknown>> | undefined
          drains.push({ pod: pod.name, outcome: log.outcome, endpoints: phases?.endpoints, settle: phases?.settle })
        }
      }
    }
    // The traffic gate's GET /stats at every sample would bury the drain call in the timeline.
    if (envoy)
      for (const call of envoy.calls.filter((c) => c.path !== '/stats'))
        note('envoy', 'admin_call', { at: performance.timeOrigin + call.at, detail: `${call.method} ${call.path}${call.query}` })
    const failures = loadResult.failures
    const details: Record<string, number> = {}
    for (const f of failures) details[`${f.kind}: ${f.detail}`] = (details[`${f.kind}: ${f.detail}`] ?? 0) + 1
    if (failures.length > 0) {
      note('load', 'first_failed_request', { at: failures[0]!.at, detail: failures[0]!.detail })
      note('load', 'last_failed_request', { at: failures.at(-1)!.at, detail: failures.at(-1)!.detail })
    }
    timeline.sort((a, b) => a.at - b.at)

    const sidecarRequests = controlPlane.kube.requests.filter((r) => r.userAgent?.startsWith('drain-coordinator'))
    // The endpoint wait's LISTs and WATCHes; anything else (a start-up permission check) is counted apart.
    const drainRequests = sidecarRequests.filter((r) => r.verb === 'list' || r.verb === 'watch')
    const drainCount = usesSidecar ? rollout : 0
    const finished = done
    const holds = finished.filter((t) => t.hookStartedAt !== undefined).map((t) => t.hookEndedAt! - t.hookStartedAt!)
    const exits = finished.map((t) => t.podExitedAt! - t.deletedAt)
    const { failures: _omit, ...totals } = loadResult
    return {
      strategy,
      condition: condition.name,
      network: network.mode,
      options: { ...o, rollout, controllerDelayMs: condition.controllerDelayMs, lbLagMs: condition.lbLagMs } as ScenarioResult['options'],
      load: { ...totals, firstFailureAt: failures[0]?.at, lastFailureAt: failures.at(-1)?.at, details },
      terminations: finished,
      hookHoldMs: { median: median(holds), max: holds.length ? Math.max(...holds) : undefined, values: holds },
      deletionToExitMs: { median: median(exits), max: Math.max(...exits), values: exits },
      apiRequests: {
        total: drainRequests.length,
        perDrain: drainCount === 0 ? 0 : drainRequests.length / drainCount,
        list: drainRequests.filter((r) => r.verb === 'list').length,
        watch: drainRequests.filter((r) => r.verb === 'watch').length,
        startupPerPod: usesSidecar ? (sidecarRequests.length - drainRequests.length) / o.replicas : 0,
      },
      drains,
      arrivedAfterSigterm: oldPods
        .slice(0, rollout)
        .reduce((sum, pod) => sum + Number(pod.app.events.find((e) => e.event === 'exiting')?.arrivedAfterSigterm ?? 0), 0),
      timeline,
      startedAt,
      firstDeletionAt,
    }
  } finally {
    for (const cleanup of cleanups.reverse())
      await Promise.resolve()
        .then(cleanup)
        .catch(() => {})
  }
}

function podOf(backend: string, ...groups: SimPod[][]): string | undefined {
  const ip = backend.split(':')[0]
  return groups.flat().find((p) => p.ip === ip)?.name
}

/** A fast readiness prober (50 ms) on the sidecar's /ready, recording when it first answers 503. */
async function probeReady(
  pod: SimPod,
  port: number,
  note: (source: string, event: string, fields: { pod?: unknown; detail?: unknown }) => void,
) {
  const until = now() + 10_000
  while (now() < until && !pod.sidecar!.hasExited()) {
    const status = await fetch(`http://${pod.ip}:${port}/ready`, { signal: AbortSignal.timeout(1_000) }).then(
      (r) => r.status,
      () => 0,
    )
    if (status === 503) {
      note('sidecar', 'ready_503', { pod: pod.name, detail: 'GET /ready → 503' })
      return
    }
    await sleep(50)
  }
}
