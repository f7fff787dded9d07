/**
 * Signals. No signal may cut a drain short or end the process while a hook is held: kubelet's SIGKILL at the end
 * of the grace period is the only hard stop, and DRAIN_TIMEOUT already bounds every drain.
 *
 * - SIGTERM, SIGINT and SIGQUIT: the first starts a drain if none has started (a classic sidecar gets SIGTERM at
 *   the same moment kubelet calls the app's hook, so it must keep serving until the drain is over), then waits
 *   for the final scrape, closes the server and exits 0. A repeat while the drain runs is logged and absorbed. A
 *   repeat during the final-scrape wait cuts that wait short: every hook has been answered by then, so the only
 *   loss is one scrape; the server still closes gracefully, so answers in flight are flushed.
 * - SIGHUP, SIGUSR1 and SIGUSR2: logged and ignored. A listener on SIGUSR1 also keeps Node from opening its
 *   inspector (the image runs node with --disable-sigusr1, which blocks the signal from the first instant).
 * Every other signal keeps Node's default.
 */
import type { DrainCoordinator } from './drain.ts'
import type { Logger } from './log.ts'

export const DRAIN_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const
export const IGNORED_SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const
type HandledSignal = (typeof DRAIN_SIGNALS)[number] | (typeof IGNORED_SIGNALS)[number]

type SignalEmitter = { on(event: HandledSignal, listener: () => void): unknown }

/** What a signal led to; the `action` field of its `signal_received` line. */
export type SignalAction = 'drain' | 'absorbed' | 'final-scrape-wait-cut-short' | 'ignored'

export function installSignalHandlers(
  emitter: SignalEmitter,
  deps: {
    coordinator: DrainCoordinator
    log: Logger
    /** Runs after the drain, before the server closes (the final scrape); a repeated signal aborts `signal`. */
    beforeExit?: (signal: AbortSignal) => Promise<void>
    closeServer: () => Promise<void>
    exit: (code: number) => void
  },
): void {
  let first: HandledSignal | undefined
  let stage: 'draining' | 'final-scrape' | 'closing' = 'draining'
  const cutFinalScrape = new AbortController()
  const received = (signal: HandledSignal, action: SignalAction) =>
    deps.log[action === 'absorbed' ? 'warn' : 'info']('signal_received', {
      signal,
      action,
      state: deps.coordinator.state,
      ...(first === undefined || action === 'drain' ? {} : { first }),
    })

  for (const signal of IGNORED_SIGNALS) emitter.on(signal, () => received(signal, 'ignored'))

  for (const signal of DRAIN_SIGNALS) {
    emitter.on(signal, () => {
      if (first === undefined) {
        first = signal
        received(signal, 'drain')
        void deps.coordinator
          .start('signal')
          .then(() => {
            stage = 'final-scrape'
            return deps.beforeExit?.(cutFinalScrape.signal)
          })
          .then(() => {
            stage = 'closing'
            return deps.closeServer()
          })
          .then(
            () => {
              deps.log.info('exiting', { code: 0 })
              deps.exit(0)
            },
            (error: unknown) => {
              deps.log.error('exit_after_error', { error })
              deps.exit(1)
            },
          )
        return
      }
      if (stage === 'final-scrape') {
        received(signal, 'final-scrape-wait-cut-short')
        cutFinalScrape.abort()
        return
      }
      // While the drain runs: held hooks stay held. While closing: the close is already bounded (2 s).
      received(signal, stage === 'draining' ? 'absorbed' : 'ignored')
    })
  }
}
