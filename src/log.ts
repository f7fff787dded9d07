/**
 * Structured logs: one JSON object per line with stable keys `time`, `level`, `event`, then the event's fields.
 * The sink and the clock are injected so tests can capture lines. Never pass a token or a header value in a field.
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

export function createLogger(write: (line: string) => void, clock: Pick<Clock, 'wallTime'>): Logger {
  const emit = (level: Level, event: string, fields: Fields = {}) => {
    write(JSON.stringify({ time: clock.wallTime().toISOString(), level, event, ...fields }, replacer) + '\n')
  }
  return {
    debug: (event, fields) => emit('debug', event, fields),
    info: (event, fields) => emit('info', event, fields),
    warn: (event, fields) => emit('warn', event, fields),
    error: (event, fields) => emit('error', event, fields),
  }
}

/** Errors do not serialize by default; keep their name, code and message (never their stack: one line each). */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code
    const cause = value.cause instanceof Error ? value.cause.message : undefined
    return { name: value.name, ...(code === undefined ? {} : { code }), message: value.message, ...(cause ? { cause } : {}) }
  }
  return value
}

/** A logger that drops everything; for tests that do not look at logs. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }
