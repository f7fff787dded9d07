/**
 * The Prometheus metrics: every metric name is defined here and nowhere else. The registry is passed in, every
 * labelled series is zeroed at start-up so dashboards and alerts see it before the first drain, and callers
 * report numbers (seconds from the injected clock), never prom-client timers.
 */
import type { collectDefaultMetrics } from 'prom-client'
import { Counter, Gauge, Histogram, type Registry } from './prom-client-classes.ts'
import { INVALID_OBJECT_KINDS, KUBE_VERBS, type InvalidObjectKind, type KubeVerb } from './kube/types.ts'
import { OUTCOMES, PHASES, type Outcome, type Phase } from './phases.ts'
import { UNEXPECTED_ERROR_KINDS, type UnexpectedErrorKind } from './last-resort.ts'

/** 10 ms to 60 s: a probe round trip at the low end, a drain that hits a long DRAIN_TIMEOUT at the top. */
export const DURATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60]

/**
 * Node's process metrics (prom-client's default metrics: CPU, memory, event loop lag, GC, handles) on `registry`.
 * main.ts adds them once the port is open, with prom-client's collector loaded then (its modules cost start-up
 * time), so a scrape in the first milliseconds may lack them; the sidecar's own metrics are there from the start.
 */
export function addProcessMetrics(registry: Registry, collect: typeof collectDefaultMetrics): void {
  collect({ register: registry })
  // prom-client exports these gauges with a `_total` suffix that `promtool check metrics` rejects (the suffix is
  // for counters); the same values stay available without it (nodejs_active_handles, ...).
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name)
  }
}

export function createMetrics(registry: Registry, { version }: { version: string }) {
  const registers = [registry]

  new Gauge({
    name: 'drain_coordinator_build_info',
    help: 'Always 1; the version label says which build is running.',
    labelNames: ['version'] as const,
    registers,
  }).set({ version }, 1)
  const drains = new Counter({
    name: 'drain_coordinator_drains_total',
    help: 'Drains finished, by outcome (completed, or timeout when DRAIN_TIMEOUT cut them short).',
    labelNames: ['outcome'] as const,
    registers,
  })
  const drainDuration = new Histogram({
    name: 'drain_coordinator_drain_duration_seconds',
    help: 'Time from the start of a drain to the release of its hooks, by outcome.',
    labelNames: ['outcome'] as const,
    buckets: DURATION_BUCKETS,
    registers,
  })
  const phaseDuration = new Histogram({
    name: 'drain_coordinator_phase_duration_seconds',
    help: 'Time each drain phase took (app, envoy, endpoints, settle), however it ended; skipped phases are not observed.',
    labelNames: ['phase'] as const,
    buckets: DURATION_BUCKETS,
    registers,
  })
  const phaseFailures = new Counter({
    name: 'drain_coordinator_phase_failures_total',
    help: 'Drain phases that failed (the app or Envoy call erred, the endpoint wait hit the deadline).',
    labelNames: ['phase'] as const,
    registers,
  })
  const draining = new Gauge({
    name: 'drain_coordinator_draining',
    help: '1 while a drain is in progress, else 0.',
    registers,
  })
  const kubeRequests = new Counter({
    name: 'drain_coordinator_kube_api_requests_total',
    help: 'EndpointSlice requests to the Kubernetes API by verb and HTTP status code ("error" when no response came).',
    labelNames: ['verb', 'code'] as const,
    registers,
  })
  const trafficLag = new Histogram({
    name: 'drain_coordinator_traffic_lag_seconds',
    help: 'Per drain with the traffic-quiet gate: time from the end of the endpoint wait to the last traffic that still reached the app (0: none did).',
    buckets: DURATION_BUCKETS,
    registers,
  })
  const kubeInvalidObjects = new Counter({
    name: 'drain_coordinator_kube_invalid_objects_total',
    help: 'Objects from the Kubernetes API that failed validation (each one counts as still routing to the pod), by object: endpointslice, list, watch_event, status.',
    labelNames: ['object'] as const,
    registers,
  })
  const hookRequests = new Counter({
    name: 'drain_coordinator_hook_requests_total',
    help: 'Calls to /prestop, by result: answered, disconnected (the caller hung up before the answer), unauthorized (wrong or missing X-Drain-Token), or bad_request (a body too large or cut off: nothing started).',
    labelNames: ['result'] as const,
    registers,
  })

  const unexpectedErrors = new Counter({
    name: 'drain_coordinator_unexpected_errors_total',
    help: 'Errors nothing else caught (an exception thrown from a callback, a promise rejected unhandled), by kind: logged as unexpected_error; the process went on. Any is a bug to report.',
    labelNames: ['kind'] as const,
    registers,
  })

  // Each sidecar drains once: a series born holding its only observation is invisible to rate() and increase(),
  // so every labelled series, histograms included, exists from start-up.
  for (const outcome of OUTCOMES) {
    drains.inc({ outcome }, 0)
    drainDuration.zero({ outcome })
  }
  for (const phase of PHASES) {
    phaseFailures.inc({ phase }, 0)
    phaseDuration.zero({ phase })
  }
  // The codes an outage shows, zeroed so increase() sees the first one; others appear when they happen.
  for (const verb of KUBE_VERBS)
    for (const code of ['200', '401', '403', '410', '429', '500', '503', 'error']) kubeRequests.inc({ verb, code }, 0)
  for (const object of INVALID_OBJECT_KINDS) kubeInvalidObjects.inc({ object }, 0)
  for (const result of ['answered', 'disconnected', 'unauthorized', 'bad_request']) hookRequests.inc({ result }, 0)
  for (const kind of UNEXPECTED_ERROR_KINDS) unexpectedErrors.inc({ kind }, 0)
  draining.set(0)

  return {
    contentType: registry.contentType,
    render: () => registry.metrics(),
    drainStarted() {
      draining.set(1)
    },
    drainFinished(outcome: Outcome, seconds: number) {
      draining.set(0)
      drains.inc({ outcome })
      drainDuration.observe({ outcome }, seconds)
    },
    phaseFinished(phase: Phase, seconds: number) {
      phaseDuration.observe({ phase }, seconds)
    },
    phaseFailed(phase: Phase) {
      phaseFailures.inc({ phase })
    },
    trafficLag(seconds: number) {
      trafficLag.observe(seconds)
    },
    kubeRequest(verb: KubeVerb, code: number | 'error') {
      kubeRequests.inc({ verb, code: String(code) })
    },
    kubeInvalidObject(object: InvalidObjectKind) {
      kubeInvalidObjects.inc({ object })
    },
    hookRequest(result: 'answered' | 'disconnected' | 'unauthorized' | 'bad_request') {
      hookRequests.inc({ result })
    },
    unexpectedError(kind: UnexpectedErrorKind) {
      unexpectedErrors.inc({ kind })
    },
  }
}

export type Metrics = ReturnType<typeof createMetrics>
