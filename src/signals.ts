/**
 * SIGTERM and SIGINT. The first starts a drain if none has started (a classic sidecar gets SIGTERM at the same
 * moment kubelet calls the app's hook, so it must keep serving until the drain is over), then exits 0 once the
 * drain is done and every waiting hook has been answered. A second signal exits at once: 128 + its number while
 * the drain runs, 0 once it is over (only the final-scrape wait is cut short).
 */
import type { DrainCoordinator } from './drain.ts'
import type { Logger } from './log.ts'

export const SIGNALS = { SIGINT: 2, SIGTERM: 15 } as const

type SignalEmitter = { on(event: keyof typeof SIGNALS, listener: () => void): unknown }

export function installSignalHandlers(
  emitter: SignalEmitter,
  deps: {
    coordinator: DrainCoordinator
    log: Logger
    /** Runs after the drain, before the server closes (the final scrape); a second signal cuts it short. */
    beforeExit?: () => Promise<void>
    closeServer: () => Promise<void>
    exit: (code: number) => void
  },
): void {
  let received: string | undefined
  for (const signal of Object.keys(SIGNALS) as (keyof typeof SIGNALS)[]) {
    emitter.on(signal, () => {
      if (received !== undefined) {
        // Drained already: only the optional final-scrape wait is cut short, and the drain itself succeeded.
        const code = deps.coordinator.state === 'drained' ? 0 : 128 + SIGNALS[signal]
        deps.log.warn('exit_on_second_signal', { signal, first: received, state: deps.coordinator.state, code })
        deps.exit(code)
        return
      }
      received = signal
      deps.log.info('signal_received', { signal, state: deps.coordinator.state })
      void deps.coordinator
        .start('signal')
        .then(() => deps.beforeExit?.())
        .then(() => deps.closeServer())
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
    })
  }
}
