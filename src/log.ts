/**
 * Structured logs: one JSON object per line with stable keys `time`, `level`, `event`, then the event's fields.
 * The sink and the clock are injected so tests can capture lines. Never pass a token or a header value in a field.
 *
 * Errors go in as the Error itself (`{ error }`) and come out as one shape: `{name, code, message}` (plus the
 * cause's message when there is one). A log call never throws: a field that cannot be serialized (nested too deep
 * for the stack, circular, a BigInt) is replaced, and the line still goes out with its event.
 */
import type { Clock } from './clock.ts'

export type Level = 'debug' | 'info' | 'warn' | 'error'
export type Fields = Record<string, unknown>

export interface Logger {
  debug(event: string, fields?: Fields): void
  info(event: string, fields?: Fields): void
  warn(event: string, fields?: Fields): void
  error(event: string, fields?: Fields): void
}

/** An error message longer than this is cut: it may quote a peer's answer. */
const MAX_MESSAGE_CHARS = 1_000

export function createLogger(write: (line: string) => void, clock: Pick<Clock, 'wallTime'>): Logger {
  const emit = (level: Level, event: string, fields: Fields = {}) => {
    const head = { time: clock.wallTime().toISOString(), level, event }
    let line: string
    try {
      line = JSON.stringify({ ...head, ...fields }, replacer)
    } catch (error) {
      // Keep what can be kept: each field on its own, the ones that fail named as such.
      const kept: Fields = {}
      for (const [key, value] of Object.entries(fields)) {
        try {
          JSON.stringify(value, replacer)
          kept[key] = value
        } catch {
          kept[key] = '<unserializable>'
        }
      }
      line = JSON.stringify({ ...head, ...kept, logError: renderError(error) }, replacer)
    }
    write(line + '\n')
  }
  return {
    debug: (event, fields) => emit('debug', event, fields),
    info: (event, fields) => emit('info', event, fields),
    warn: (event, fields) => emit('warn', event, fields),
    error: (event, fields) => emit('error', event, fields),
  }
}

export type RenderedError = { name: string; code?: string | number; message: string; cause?: string }

/**
 * The one shape of an error in a log line (and in the drain summary). Never throws, whatever was thrown: it runs in
 * the paths that hold a hook after a failure, where a second failure must not answer the hook.
 */
export function renderError(error: unknown): RenderedError {
  try {
    if (!(error instanceof Error)) return { name: typeof error, message: clip(safeString(error)) }
    const code = (error as { code?: unknown }).code
    const cause = error.cause instanceof Error ? clip(safeString(error.cause.message)) : undefined
    return {
      name: clip(safeString(error.name), 100),
      ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}),
      message: clip(safeString(error.message)),
      ...(cause ? { cause } : {}),
    }
  } catch {
    // A getter on the error itself threw.
    return { name: 'Error', message: '<unprintable>' }
  }
}

function replacer(_key: string, value: unknown): unknown {
  return value instanceof Error ? renderError(value) : value
}

const clip = (text: string, max = MAX_MESSAGE_CHARS) => (text.length > max ? `${text.slice(0, max)}…` : text)

function safeString(value: unknown): string {
  try {
    return String(value)
  } catch {
    return '<unprintable>'
  }
}

/** A logger that drops everything; for tests that do not look at logs. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }
