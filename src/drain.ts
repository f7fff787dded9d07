/**
 * The drain sequence. The first start() runs it; every later or concurrent caller joins the same run and gets
 * the same summary. Reads top to bottom as the contract's steps:
 *   1. readiness flips (state becomes 'draining', so /ready answers 503),
 *   2. app shutdown URL and Envoy graceful drain, in the background, each bounded, failures recorded,
 *   3. endpoint wait through the Kubernetes API,
 *   4. settle,
 *   5. release.
 * DRAIN_TIMEOUT bounds steps 2 to 5 together: at the deadline the drain is released with outcome 'timeout'.
 */
import { type Clock, deadline } from './clock.ts'
import type { Config } from './config.ts'
import { DrainCoordinatorError, describeError } from './errors.ts'
import type { EndpointWaitResult } from './kube/endpoint-wait.ts'
import type { Logger } from './log.ts'
import type { Metrics } from './metrics.ts'
import { PHASES, type Outcome, type Phase, type PhaseStatus, type Trigger } from './phases.ts'
import { envoyDrainUrl, postExpectingSuccess } from './side-calls.ts'
import type { Fetch } from './transport.ts'

export type PhaseReport = { status: PhaseStatus; durationSeconds?: number; error?: string } & Record<string, unknown>

export type DrainSummary = {
  outcome: Outcome
  trigger: Trigger
  startedAt: string
  durationSeconds: number
  phases: Record<Phase, PhaseReport>
}

export type DrainState = 'serving' | 'draining' | 'drained'

export type DrainDeps = Readonly<{
  clock: Clock
  log: Logger
  metrics: Metrics
  appFetch: Fetch
  envoyFetch: Fetch
  /** undefined: no API server configured, the endpoint wait is skipped. */
  waitForEndpoints: ((signal: AbortSignal) => Promise<EndpointWaitResult>) | undefined
  config: Pick<Config, 'appShutdownUrl' | 'envoyAdminUrl' | 'settleMs' | 'timeoutMs' | 'sideCallTimeoutMs'>
}>

export class DrainDeadlineError extends DrainCoordinatorError {
  override name = 'DrainDeadlineError'
  constructor(timeoutMs: number) {
    super('DRAIN_DEADLINE', `DRAIN_TIMEOUT (${timeoutMs}ms) reached`)
  }
}

class ReleasedError extends DrainCoordinatorError {
  override name = 'ReleasedError'
  constructor() {
    super('DRAIN_RELEASED', 'the drain was released first')
  }
}

export type DrainCoordinator = ReturnType<typeof createDrainCoordinator>

export function createDrainCoordinator(deps: DrainDeps) {
  let running: Promise<DrainSummary> | undefined
  let finished: DrainSummary | undefined

  async function run(trigger: Trigger, userAgent: string | undefined): Promise<DrainSummary> {
    const { clock, log, metrics, config } = deps
    const startedAt = clock.now()
    const startedWall = clock.wallTime()
    const seconds = (from: number) => Math.round(clock.now() - from) / 1_000
    const reports = Object.fromEntries(PHASES.map((phase) => [phase, { status: 'cancelled' }])) as Record<Phase, PhaseReport>
    let released = false

    log.info('drain_started', { by: trigger, userAgent: userAgent ?? null, timeoutMs: config.timeoutMs, settleMs: config.settleMs })
    metrics.drainStarted()
    const drainDeadline = deadline(clock, config.timeoutMs, new DrainDeadlineError(config.timeoutMs))
    const release = new AbortController()
    const untilReleased = AbortSignal.any([drainDeadline.signal, release.signal])

    const phaseStarts = new Map<Phase, number>()

    async function phase(name: Phase, work: (signal: AbortSignal) => Promise<Record<string, unknown> | void>, signal: AbortSignal) {
      const phaseStart = clock.now()
      phaseStarts.set(name, phaseStart)
      try {
        const extra = await work(signal)
        if (released) return
        phaseStarts.delete(name)
        reports[name] = { status: 'ok', durationSeconds: seconds(phaseStart), ...extra }
        metrics.phaseFinished(name, seconds(phaseStart))
        log.info('phase_finished', { phase: name, ...reports[name] })
      } catch (error) {
        if (released) return
        phaseStarts.delete(name)
        if (untilReleased.aborted && error === untilReleased.reason) return cancel(name, phaseStart, error)
        reports[name] = { status: 'failed', durationSeconds: seconds(phaseStart), error: describeError(error) }
        metrics.phaseFinished(name, seconds(phaseStart))
        metrics.phaseFailed(name)
        log.warn('phase_failed', { phase: name, ...reports[name] })
      }
    }

    /** A phase the deadline or the release overtook. */
    function cancel(name: Phase, phaseStart: number, reason: unknown) {
      reports[name] = { status: 'cancelled', durationSeconds: seconds(phaseStart), error: describeError(reason) }
      metrics.phaseFinished(name, seconds(phaseStart))
      // The endpoint wait cut short by the deadline is what alerts care about; a settle cut short is not.
      if (name === 'endpoints') metrics.phaseFailed(name)
      log.info('phase_cancelled', { phase: name, ...reports[name] })
    }

    function sideCall(name: 'app' | 'envoy', url: string | undefined, fetch: Fetch, what: string) {
      if (url === undefined) {
        reports[name] = { status: 'skipped' }
        return
      }
      const bounded = deadline(clock, config.sideCallTimeoutMs, new DrainCoordinatorError('SIDE_CALL_TIMEOUT', `${what}: POST ${url} got no answer within ${config.sideCallTimeoutMs}ms`), untilReleased)
      void phase(name, async (signal) => ({ httpStatus: await postExpectingSuccess(fetch, what, url, signal) }), bounded.signal).finally(bounded.cancel)
    }

    // Step 2 runs beside the endpoint wait, never in front of it.
    sideCall('app', config.appShutdownUrl, deps.appFetch, 'app shutdown')
    sideCall('envoy', config.envoyAdminUrl === undefined ? undefined : envoyDrainUrl(config.envoyAdminUrl), deps.envoyFetch, 'Envoy drain')

    const sequence = (async () => {
      if (deps.waitForEndpoints === undefined) reports.endpoints = { status: 'skipped' }
      else await phase('endpoints', async (signal) => ({ ...(await deps.waitForEndpoints!(signal)) }), drainDeadline.signal)
      if (drainDeadline.signal.aborted) return
      // A wait that failed proved nothing: the endpoint may still be routed to. Without evidence the hook is held to
      // the deadline and the outcome says 'timeout', never 'completed'.
      if (reports.endpoints.status === 'failed') {
        log.warn('drain_held_without_evidence', { reason: 'the endpoint wait failed', until: 'DRAIN_TIMEOUT' })
        return abortedPromise(drainDeadline.signal)
      }
      await phase('settle', (signal) => clock.sleep(config.settleMs, signal), drainDeadline.signal)
    })()
    // Nothing in the sequence may hold the hook past the deadline, even code that ignores its signal.
    await Promise.race([sequence, abortedPromise(drainDeadline.signal)])

    const outcome: Outcome = drainDeadline.signal.aborted ? 'timeout' : 'completed'
    // After the deadline this changes nothing: untilReleased already holds the deadline's reason.
    release.abort(new ReleasedError())
    for (const [name, phaseStart] of phaseStarts) cancel(name, phaseStart, untilReleased.reason)
    released = true
    drainDeadline.cancel()
    const summary: DrainSummary = {
      outcome,
      trigger,
      startedAt: startedWall.toISOString(),
      durationSeconds: seconds(startedAt),
      phases: reports,
    }
    metrics.drainFinished(outcome, summary.durationSeconds)
    log[outcome === 'completed' ? 'info' : 'warn']('drain_finished', { ...summary })
    finished = summary
    return summary
  }

  return {
    /** Starts the drain, or joins the one already started (or finished). */
    start(trigger: Trigger, userAgent?: string): Promise<DrainSummary> {
      if (running === undefined) running = run(trigger, userAgent)
      else deps.log.info('drain_joined', { by: trigger, userAgent: userAgent ?? null, state: finished ? 'drained' : 'draining' })
      return running
    },
    get state(): DrainState {
      return running === undefined ? 'serving' : finished === undefined ? 'draining' : 'drained'
    },
    get summary(): DrainSummary | undefined {
      return finished
    },
  }
}

function abortedPromise(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve()
    else signal.addEventListener('abort', () => resolve(), { once: true })
  })
}
