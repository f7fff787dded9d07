/**
 * The last resort for an error nothing else caught: an exception thrown from a callback, or a rejected promise
 * nobody handled. Node's default is to end the process, and an ended sidecar answers every held hook with a broken
 * connection, which kubelet takes as "hook done" and goes on to stop the app: the early release the sidecar exists
 * to prevent. So such an error is logged (`unexpected_error`, error level) and counted, and the process goes on:
 * the drain's own deadline still answers every hook, with `timeout` unless its evidence arrives.
 *
 * This is a choice of safety over purity: Node's documentation warns that state may be inconsistent after an
 * uncaught exception. Nothing here can make a hook `completed` without evidence (only the endpoint wait's result
 * does), and a process broken beyond serving fails its liveness probe and is restarted, as it would be after a crash.
 */
import type { Logger } from './log.ts'

export const UNEXPECTED_ERROR_KINDS = ['uncaughtException', 'unhandledRejection'] as const
export type UnexpectedErrorKind = (typeof UNEXPECTED_ERROR_KINDS)[number]

type ProcessEmitter = {
  on(event: 'uncaughtException', listener: (error: unknown) => void): unknown
  on(event: 'unhandledRejection', listener: (reason: unknown) => void): unknown
}

/** Installs both listeners; returns the reporter, for code that catches such an error itself and must not rethrow. */
export function installLastResort(
  emitter: ProcessEmitter,
  deps: { log: Logger; count: (kind: UnexpectedErrorKind) => void },
): (kind: UnexpectedErrorKind, error: unknown) => void {
  const report = (kind: UnexpectedErrorKind, error: unknown) => {
    // Neither the log nor the counter may throw from here: a throw inside this listener would end the process.
    try {
      deps.count(kind)
    } catch {
      // counted or not, the process goes on
    }
    deps.log.error('unexpected_error', {
      kind,
      error,
      // Where it came from, for the bug report: the first frames only, one string.
      stack: error instanceof Error && typeof error.stack === 'string' ? error.stack.split('\n').slice(1, 6).join('\n') : null,
      effect: 'the process goes on; held hooks keep their deadline',
    })
  }
  emitter.on('uncaughtException', (error) => report('uncaughtException', error))
  emitter.on('unhandledRejection', (reason) => report('unhandledRejection', reason))
  return report
}
