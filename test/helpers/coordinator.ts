/**
 * A drain coordinator for tests, with a captured log and its own registry. Defaults: the system clock, the
 * global fetch, no app, Envoy or API server, a 10 ms settle and a 5 s deadline; tests override what they probe.
 */
import { Registry } from 'prom-client'
import { type Clock, systemClock } from '../../src/clock.ts'
import { createDrainCoordinator, type DrainDeps } from '../../src/drain.ts'
import { createMetrics, type Metrics } from '../../src/metrics.ts'
import type { Fetch } from '../../src/transport.ts'
import { captureLog } from './capture-log.ts'

export function testCoordinator(
  options: {
    clock?: Clock
    appFetch?: Fetch
    envoyFetch?: Fetch
    waitForEndpoints?: DrainDeps['waitForEndpoints']
    trafficObserver?: DrainDeps['trafficObserver']
    readDeletion?: DrainDeps['readDeletion']
    recordEvent?: DrainDeps['recordEvent']
    config?: Partial<DrainDeps['config']>
    /** Replaces some of the real metrics (to make them fail, say). */
    metrics?: (real: Metrics) => Metrics
  } = {},
) {
  const log = captureLog()
  const registry = new Registry()
  const real = createMetrics(registry, { version: 'test' })
  const metrics = options.metrics?.(real) ?? real
  const coordinator = createDrainCoordinator({
    clock: options.clock ?? systemClock,
    log,
    metrics,
    appFetch: options.appFetch ?? fetch,
    envoyFetch: options.envoyFetch ?? fetch,
    waitForEndpoints: options.waitForEndpoints,
    trafficObserver: options.trafficObserver,
    readDeletion: options.readDeletion,
    recordEvent: options.recordEvent,
    // quietPeriodMs 0: the fixed settle, unless a test drives the traffic gate.
    config: {
      appShutdownUrl: undefined,
      envoyAdminUrl: undefined,
      settleMs: 10,
      timeoutMs: 5_000,
      sideCallTimeoutMs: 1_000,
      quietPeriodMs: 0,
      settleMinMs: 0,
      appReserveMs: 10_000,
      ...options.config,
    },
  })
  return { coordinator, log, registry, metrics }
}

/** The value of one series of a metric in `registry`: the one whose labels include `labels`. */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const { values } = await registry.getSingleMetric(name)!.get()
  return values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value
}
