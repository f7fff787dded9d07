/**
 * The simulated kubelet's pod termination (pkg/kubelet/kuberuntime killContainer, see
 * docs/kubelet-hooks.md): every container is killed in parallel. For the app container: run its
 * preStop hook (an HTTP GET with no client timeout, or a sleep), bounded by the grace period; a refused connection
 * or any transport error is a failed hook (FailedPreStopHook) and kubelet goes on; the HTTP status is ignored.
 * Then SIGTERM, and SIGKILL once the rest of the grace period (whole seconds, at least 2 s) has passed. A classic
 * (non-native) sidecar container has no hook of its own: it gets SIGTERM at once, the moment the app's hook is
 * called, and SIGKILL at the end of the grace period. When every container has exited, the pod is gone.
 */
import { request } from 'node:http'
import { type Child, now, sleep } from './common.ts'
import type { ControlPlane, PodRef } from './control-plane.ts'

export type PreStop = { kind: 'none' } | { kind: 'sleep'; ms: number } | { kind: 'httpGet'; url: string }

export type SimPod = PodRef & { app: Child; sidecar: Child | undefined; preStop: PreStop }

export type Termination = {
  pod: string
  deletedAt: number
  hookStartedAt: number | undefined
  hookEndedAt: number | undefined
  /** 'ok' (any HTTP status, or the sleep ended), 'failed: <error>' (FailedPreStopHook), 'grace period expired'. */
  hookOutcome: string | undefined
  sigtermAt: number | undefined
  appSigkilled: boolean
  appExitedAt: number | undefined
  sidecarExitedAt: number | undefined
  /** Every container exited. */
  podExitedAt: number | undefined
}

const KUBELET_USER_AGENT = 'kube-lifecycle/1.33'
const MINIMUM_GRACE_PERIOD_MS = 2_000

export async function terminatePod(
  pod: SimPod,
  {
    graceMs,
    controlPlane,
    onEvent,
  }: {
    graceMs: number
    controlPlane: Pick<ControlPlane, 'podDeleted' | 'podGone'>
    onEvent?: (event: string, fields: Record<string, unknown>) => void
  },
): Promise<Termination> {
  const record: Termination = {
    pod: pod.name,
    deletedAt: now(),
    hookStartedAt: undefined,
    hookEndedAt: undefined,
    hookOutcome: undefined,
    sigtermAt: undefined,
    appSigkilled: false,
    appExitedAt: undefined,
    sidecarExitedAt: undefined,
    podExitedAt: undefined,
  }
  const event = (name: string, fields: Record<string, unknown> = {}) => onEvent?.(name, { pod: pod.name, ...fields })
  event('pod_deleted')
  controlPlane.podDeleted(pod)
  const timers: NodeJS.Timeout[] = []

  // The classic sidecar: no hook, SIGTERM now, SIGKILL at the end of the grace period.
  const sidecarDone = (async () => {
    if (!pod.sidecar) return
    const sidecar = pod.sidecar
    sidecar.process.kill('SIGTERM')
    timers.push(setTimeout(() => sidecar.process.kill('SIGKILL'), graceMs))
    record.sidecarExitedAt = (await sidecar.exited).at
    event('sidecar_exited')
  })()

  const appDone = (async () => {
    if (pod.preStop.kind !== 'none') {
      record.hookStartedAt = now()
      const hook = pod.preStop.kind === 'sleep' ? sleepHook(pod.preStop.ms) : httpGetHook(pod.preStop.url)
      let graceTimer: NodeJS.Timeout | undefined
      const grace = new Promise<string>((resolve) => {
        graceTimer = setTimeout(() => resolve('grace period expired'), graceMs)
      })
      record.hookOutcome = await Promise.race([hook, grace])
      clearTimeout(graceTimer)
      record.hookEndedAt = now()
      event(record.hookOutcome === 'ok' ? 'hook_released' : 'hook_failed', { outcome: record.hookOutcome })
    }
    // gracePeriod -= int64(elapsed.Seconds()): whole seconds, then a 2 s floor.
    const elapsedWholeSeconds = Math.floor((now() - record.deletedAt) / 1_000)
    const remainingMs = Math.max(MINIMUM_GRACE_PERIOD_MS, graceMs - elapsedWholeSeconds * 1_000)
    record.sigtermAt = now()
    event('sigterm')
    pod.app.process.kill('SIGTERM')
    timers.push(
      setTimeout(() => {
        if (pod.app.hasExited()) return
        record.appSigkilled = true
        pod.app.process.kill('SIGKILL')
      }, remainingMs),
    )
    record.appExitedAt = (await pod.app.exited).at
    event('app_exited', { sigkilled: record.appSigkilled })
  })()

  await Promise.all([sidecarDone, appDone])
  for (const timer of timers) clearTimeout(timer)
  record.podExitedAt = now()
  controlPlane.podGone(pod)
  return record
}

async function sleepHook(ms: number): Promise<string> {
  await sleep(ms)
  return 'ok'
}

/** kubelet's lifecycle HTTP client: GET, no timeout, body drained, status ignored; only transport errors fail. */
function httpGetHook(url: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'GET', agent: false, headers: { 'user-agent': KUBELET_USER_AGENT, accept: '*/*' } }, (res) => {
      res.resume()
      res.on('end', () => resolve('ok'))
      res.on('error', (error: NodeJS.ErrnoException) => resolve(`failed: ${error.code ?? error.message}`))
    })
    req.on('error', (error: NodeJS.ErrnoException) => resolve(`failed: ${error.code ?? error.message}`))
    req.end()
  })
}
