/**
 * Kubernetes Events on the sidecar's own Pod, visible in `kubectl describe pod`: best effort. Recording never
 * throws and never delays the caller; the first failure is logged once, later ones only counted in that line's
 * absence. Core v1 Events (POST /api/v1/namespaces/NS/events), not events.k8s.io/v1: `kubectl describe` shows
 * both, core v1 needs fewer required fields (no reportingController/action/MicroTime), works on every
 * Kubernetes version, and keeps the Role in the core API group beside `get` on pods.
 */
import type { Logger } from '../log.ts'
import { errorFromResponse, kubeRequest, type KubeRequestDeps } from './request.ts'

export type EventType = 'Normal' | 'Warning'

export type EventRecorderDeps = KubeRequestDeps & {
  apiUrl: string
  namespace: string
  pod: { name: string; uid: string | undefined }
  log: Logger
}

/** Bound on one POST: an Event is never worth holding anything for. */
export const EVENT_TIMEOUT_MS = 5_000

export const EVENT_COMPONENT = 'drain-coordinator'

export function createEventRecorder(deps: EventRecorderDeps) {
  let failureLogged = false
  const pending = new Set<Promise<void>>()
  const url = `${deps.apiUrl}/api/v1/namespaces/${encodeURIComponent(deps.namespace)}/events`

  async function post(type: EventType, reason: string, message: string): Promise<void> {
    const now = deps.clock
      .wallTime()
      .toISOString()
      .replace(/\.\d+Z$/, 'Z')
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${deps.pod.name}.`, namespace: deps.namespace },
      involvedObject: {
        apiVersion: 'v1',
        kind: 'Pod',
        namespace: deps.namespace,
        name: deps.pod.name,
        ...(deps.pod.uid === undefined ? {} : { uid: deps.pod.uid }),
      },
      type,
      reason,
      // events.k8s.io caps a note at 1 KiB; core v1 accepts more, but a describe line should stay readable.
      message: message.slice(0, 1_000),
      source: { component: EVENT_COMPONENT },
      reportingComponent: EVENT_COMPONENT,
      reportingInstance: deps.pod.name,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    }
    try {
      const { response, done } = await kubeRequest(
        { ...deps, timeoutMs: EVENT_TIMEOUT_MS },
        { method: 'POST', url, body: JSON.stringify(event) },
      )
      try {
        if (!response.ok) throw await errorFromResponse(`POST ${url}`, response, deps.clock.wallTime().getTime())
        await response.body?.cancel().catch(() => {})
      } finally {
        done()
      }
    } catch (error) {
      if (failureLogged) return
      failureLogged = true
      deps.log.warn('event_not_recorded', { reason, error, effect: 'none: Events are best effort (logged once)' })
    }
  }

  return {
    /** Starts recording; returns at once. */
    record(type: EventType, reason: string, message: string): void {
      const sending = post(type, reason, message)
      pending.add(sending)
      void sending.finally(() => pending.delete(sending))
    },
    /** Resolves once every Event started so far is sent or failed, or after `ms`. */
    async flush(ms: number): Promise<void> {
      const stop = new AbortController()
      await Promise.race([Promise.all([...pending]), deps.clock.sleep(ms, stop.signal).catch(() => {})])
      stop.abort()
    },
  }
}

export type EventRecorder = ReturnType<typeof createEventRecorder>
