/**
 * The drain sequence. The first start() runs it; every later or concurrent caller joins the same run and gets
 * the same summary. Reads top to bottom as the contract's steps:
 *   1. readiness flips (state becomes 'draining', so /ready answers 503),
 *   2. app shutdown URL and Envoy graceful drain, in the background, each bounded, failures recorded,
 *   3. endpoint wait through the Kubernetes API,
 *   4. settle,
 *   5. release.
 * DRAIN_TIMEOUT bounds steps 2 to 5 together: at the deadline the drain is released with outcome 'timeout'.
 * Each phase is a function that returns its report, whatever happened to it; the summary is built from those.
 */
import { rejectedOnAbort, untilAborted } from './abort.ts'
import { type Clock, deadline } from './clock.ts'
import type { Config } from './config.ts'
import { type AppliedDeadline, type PodDeletion, createDrainDeadline } from './drain-deadline.ts'
import { type DrainEvent, drainFinishedEvent, drainStartedEvent } from './drain-events.ts'
import { DrainCoordinatorError } from './errors.ts'
import type { EndpointWaitResult } from './kube/endpoint-wait.ts'
import { type Logger, type RenderedError, renderError } from './log.ts'
import type { Metrics } from './metrics.ts'
import type { Outcome, Phase, PhaseStatus, Trigger } from './phases.ts'
import { envoyDrainUrl, postExpectingSuccess } from './side-calls.ts'
import { SAMPLE_INTERVAL_MS, createSettle } from './traffic/gate.ts'
import type { Observation } from './traffic/observer.ts'
import type { Fetch } from './transport.ts'

/** `error`: the one shape errors have in log lines too ({name, code, message}). */
export type PhaseReport = { status: PhaseStatus; durationSeconds?: number; error?: RenderedError } & Record<string, unknown>

export type DrainSummary = {
  outcome: Outcome
  trigger: Trigger
  startedAt: string
  durationSeconds: number
  /** Which deadline applied (DRAIN_TIMEOUT, or the pod's grace budget) and how long it was. */
  deadline: AppliedDeadline
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
  /** Makes a fresh traffic observer for one drain's settle; undefined: no source, the settle is fixed. */
  trafficObserver?: (() => () => Promise<Observation>) | undefined
  /**
   * Reads the pod's deletion (undefined: not being deleted); throws when it cannot.
   * undefined: no API server or no POD_NAME, the deadline is DRAIN_TIMEOUT.
   */
  readDeletion?: ((signal: AbortSignal) => Promise<PodDeletion | undefined>) | undefined
  /** Records a Kubernetes Event on the pod, best effort: returns at once and never throws. */
  recordEvent?: ((event: DrainEvent) => void) | undefined
  config: Pick<
    Config,
    'appShutdownUrl' | 'envoyAdminUrl' | 'settleMs' | 'timeoutMs' | 'sideCallTimeoutMs' | 'quietPeriodMs' | 'settleMinMs' | 'appReserveMs'
  >
}>

export { DrainDeadlineError } from './drain-deadline.ts'

/** Longest wait for the pod's own object; past it the drain keeps DRAIN_TIMEOUT. */
export const POD_READ_TIMEOUT_MS = 5_000

class ReleasedError extends DrainCoordinatorError {
  override name = 'ReleasedError'
  constructor() {
    super('DRAIN_RELEASED', 'the drain was released first')
  }
}

/** A phase that never started because the deadline came first, or an earlier phase proved nothing. */
const NOT_STARTED: PhaseReport = Object.freeze({ status: 'cancelled' })
const SKIPPED: PhaseReport = Object.freeze({ status: 'skipped' })

export type DrainCoordinator = ReturnType<typeof createDrainCoordinator>

export function createDrainCoordinator(deps: DrainDeps) {
  const { clock, log, metrics, config } = deps
  let running: Promise<DrainSummary> | undefined
  let finished: DrainSummary | undefined
  let budgetFallbackLogged = false
  const seconds = (from: number) => Math.round(clock.now() - from) / 1_000

  /** Events are best effort: even a recorder that breaks its promise and throws changes nothing here. */
  function emitEvent(event: DrainEvent) {
    try {
      deps.recordEvent?.(event)
    } catch (error) {
      log.warn('event_not_recorded', { reason: event.reason, error })
    }
  }

  /**
   * Runs one phase and returns its report; never throws. `signal` is the phase's own bound; `cancelledBy` is the
   * drain's (deadline or release): an abort from it makes the phase `cancelled`, anything else thrown `failed`.
   * The work is raced against `signal`, so even code that ignores its signal cannot hold a phase past it.
   */
  async function runPhase(
    name: Phase,
    signal: AbortSignal,
    cancelledBy: AbortSignal,
    work: (signal: AbortSignal) => Promise<Record<string, unknown> | void>,
    /** What a cancelled phase still has to say. */
    sofar: () => Record<string, unknown> = () => ({}),
  ): Promise<PhaseReport> {
    const phaseStart = clock.now()
    try {
      const extra = await Promise.race([work(signal), rejectedOnAbort(signal)])
      const report: PhaseReport = { status: 'ok', durationSeconds: seconds(phaseStart), ...extra }
      metrics.phaseFinished(name, report.durationSeconds!)
      log.info('phase_finished', { phase: name, ...report })
      return report
    } catch (error) {
      const cancelled = cancelledBy.aborted && error === cancelledBy.reason
      const report: PhaseReport = {
        status: cancelled ? 'cancelled' : 'failed',
        durationSeconds: seconds(phaseStart),
        ...(cancelled ? sofar() : {}),
        error: renderError(error),
      }
      metrics.phaseFinished(name, report.durationSeconds!)
      // The endpoint wait cut short by the deadline is what alerts care about; a settle cut short is not.
      if (!cancelled || name === 'endpoints') metrics.phaseFailed(name)
      if (cancelled) log.info('phase_cancelled', { phase: name, ...report })
      else log.warn('phase_failed', { phase: name, ...report })
      return report
    }
  }

  async function run(trigger: Trigger, userAgent: string | undefined): Promise<DrainSummary> {
    const startedAt = clock.now()
    const startedWall = clock.wallTime()
    log.info('drain_started', {
      by: trigger,
      userAgent: userAgent ?? null,
      timeoutMs: config.timeoutMs,
      settleMs: config.settleMs,
      quietPeriodMs: config.quietPeriodMs,
    })
    metrics.drainStarted()
    emitEvent(drainStartedEvent(trigger))
    const drainDeadline = createDrainDeadline(clock, config.timeoutMs)
    const release = new AbortController()
    const untilReleased = AbortSignal.any([drainDeadline.signal, release.signal])

    /** Beside every step: the pod's grace budget may bring the deadline forward. Never delays anything. */
    const applyGraceBudget = async (): Promise<void> => {
      const fallBack = (reason: string, error?: unknown) => {
        if (budgetFallbackLogged) return
        budgetFallbackLogged = true
        log.warn('grace_budget_unavailable', {
          reason,
          ...(error === undefined ? {} : { error }),
          deadline: 'DRAIN_TIMEOUT',
          timeoutMs: config.timeoutMs,
        })
      }
      const read = deps.readDeletion
      if (read === undefined) return fallBack('no API server or no POD_NAME to read the pod with')
      const bounded = deadline(
        clock,
        POD_READ_TIMEOUT_MS,
        new DrainCoordinatorError('POD_READ_TIMEOUT', `the pod's own object was not read within ${POD_READ_TIMEOUT_MS}ms`),
        untilReleased,
      )
      try {
        const deletion = await Promise.race([read(bounded.signal), rejectedOnAbort(bounded.signal)])
        if (deletion === undefined)
          return fallBack('the pod has no deletionTimestamp (not being deleted: a signal without deletion, or a node shutdown)')
        log.info('drain_deadline', { ...drainDeadline.applyBudget(deletion, config.appReserveMs), reserveMs: config.appReserveMs })
      } catch (error) {
        // The drain ended first: nothing left to bound.
        if (!(untilReleased.aborted && error === untilReleased.reason)) fallBack('the pod could not be read', error)
      } finally {
        bounded.cancel()
      }
    }
    void applyGraceBudget()

    /** Step 2: POST to the app or Envoy, bounded by its own timeout and by the release. */
    const sideCall = async (name: 'app' | 'envoy', url: string | undefined, fetch: Fetch, what: string): Promise<PhaseReport> => {
      if (url === undefined) return SKIPPED
      const timeout = new DrainCoordinatorError(
        'SIDE_CALL_TIMEOUT',
        `${what}: POST ${url} got no answer within ${config.sideCallTimeoutMs}ms`,
      )
      const bounded = deadline(clock, config.sideCallTimeoutMs, timeout, untilReleased)
      try {
        return await runPhase(name, bounded.signal, untilReleased, async (signal) => ({
          httpStatus: await postExpectingSuccess(fetch, what, url, signal),
        }))
      } finally {
        bounded.cancel()
      }
    }

    /** Step 3. */
    const endpoints = (): Promise<PhaseReport> => {
      const wait = deps.waitForEndpoints
      if (wait === undefined) return Promise.resolve(SKIPPED)
      return runPhase('endpoints', drainDeadline.signal, drainDeadline.signal, async (signal) => ({ ...(await wait(signal)) }))
    }

    /** Step 4: until traffic has been quiet for DRAIN_QUIET_PERIOD, within DRAIN_SETTLE_MIN and DRAIN_SETTLE. */
    const settle = async (): Promise<PhaseReport> => {
      const settleStart = clock.now()
      let gate: ReturnType<typeof createSettle> | undefined
      const report = await runPhase(
        'settle',
        drainDeadline.signal,
        drainDeadline.signal,
        (signal) => {
          gate = createSettle({
            clock,
            log,
            observe: deps.trafficObserver?.(),
            quietMs: config.quietPeriodMs,
            minMs: config.settleMinMs,
            maxMs: config.settleMs,
            intervalMs: SAMPLE_INTERVAL_MS,
          })
          return gate.run(signal)
        },
        () => ({ ...gate?.progress('deadline') }),
      )
      if (typeof report.trafficLagSeconds === 'number') metrics.trafficLag(report.trafficLagSeconds)
      if (report.status === 'failed') {
        // A gate that broke proved no quiet: hold for its upper bound, as a fixed settle would, never less.
        log.warn('drain_held_without_evidence', { reason: 'the traffic gate failed', until: 'DRAIN_SETTLE' })
        await clock.sleep(Math.max(0, config.settleMs - (clock.now() - settleStart)), drainDeadline.signal).catch(() => {})
      }
      return report
    }

    /** Steps 3 and 4: the settle runs only after evidence, and only while the deadline has not passed. */
    const sequence = async (): Promise<{ endpoints: PhaseReport; settle: PhaseReport }> => {
      const endpointsReport = await endpoints()
      if (drainDeadline.signal.aborted) return { endpoints: endpointsReport, settle: NOT_STARTED }
      // A wait that failed proved nothing: the endpoint may still be routed to. Without evidence the hook is held to
      // the deadline and the outcome says 'timeout', never 'completed'.
      if (endpointsReport.status === 'failed') {
        log.warn('drain_held_without_evidence', { reason: 'the endpoint wait failed', until: drainDeadline.applied.source })
        await untilAborted(drainDeadline.signal)
        return { endpoints: endpointsReport, settle: NOT_STARTED }
      }
      return { endpoints: endpointsReport, settle: await settle() }
    }

    // Step 2 runs beside the endpoint wait, never in front of it.
    const app = sideCall('app', config.appShutdownUrl, deps.appFetch, 'app shutdown')
    const envoy = sideCall(
      'envoy',
      config.envoyAdminUrl === undefined ? undefined : envoyDrainUrl(config.envoyAdminUrl),
      deps.envoyFetch,
      'Envoy drain',
    )
    const waited = await sequence().catch(async (error: unknown) => {
      // A bug in the sequence itself proves nothing either: hold to the deadline rather than answer early.
      log.error('drain_held_without_evidence', { reason: 'the drain sequence failed', until: drainDeadline.applied.source, error })
      await untilAborted(drainDeadline.signal)
      return { endpoints: { status: 'failed', error: renderError(error) } as PhaseReport, settle: NOT_STARTED }
    })

    // Step 5. The deadline, if it came, already reached untilReleased; otherwise side calls still running end now.
    const outcome: Outcome = drainDeadline.signal.aborted ? 'timeout' : 'completed'
    release.abort(new ReleasedError())
    drainDeadline.cancel()
    const summary: DrainSummary = {
      outcome,
      trigger,
      startedAt: startedWall.toISOString(),
      durationSeconds: seconds(startedAt),
      deadline: drainDeadline.applied,
      phases: { app: await app, envoy: await envoy, ...waited },
    }
    metrics.drainFinished(outcome, summary.durationSeconds)
    log[outcome === 'completed' ? 'info' : 'warn']('drain_finished', { ...summary })
    emitEvent(drainFinishedEvent(summary))
    finished = summary
    return summary
  }

  /**
   * The last safety net: run() broke outside every phase's own handling. Nothing proved the endpoint gone, so the
   * hooks are held for DRAIN_TIMEOUT from now and answered 'timeout', never answered early with an error.
   */
  async function heldToTimeout(trigger: Trigger, startedAt: number, startedWall: Date, error: unknown): Promise<DrainSummary> {
    const failed: PhaseReport = { status: 'failed', error: renderError(error) }
    try {
      log.error('drain_held_without_evidence', { reason: 'the drain broke', until: 'DRAIN_TIMEOUT', error })
    } catch {
      // Not even a log line can stop the hold.
    }
    await clock.sleep(config.timeoutMs, new AbortController().signal)
    const summary: DrainSummary = {
      outcome: 'timeout',
      trigger,
      startedAt: startedWall.toISOString(),
      durationSeconds: seconds(startedAt),
      deadline: { source: 'DRAIN_TIMEOUT', seconds: config.timeoutMs / 1_000 },
      phases: { app: failed, envoy: failed, endpoints: failed, settle: NOT_STARTED },
    }
    finished = summary
    return summary
  }

  return {
    /** Starts the drain, or joins the one already started (or finished). */
    start(trigger: Trigger, userAgent?: string): Promise<DrainSummary> {
      if (running === undefined)
        running = run(trigger, userAgent).catch((error: unknown) => heldToTimeout(trigger, clock.now(), clock.wallTime(), error))
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
