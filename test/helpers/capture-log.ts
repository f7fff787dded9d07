/** A logger that keeps its lines as objects, for tests that assert on what was logged. */
import { type Clock, systemClock } from '../../src/clock.ts'
import { createLogger, type Logger } from '../../src/log.ts'

export type CapturedLine = { level: string; event: string } & Record<string, unknown>

export function captureLog(clock: Pick<Clock, 'wallTime'> = systemClock): Logger & { lines: CapturedLine[]; events: () => string[] } {
  const lines: CapturedLine[] = []
  const logger = createLogger((line) => lines.push(JSON.parse(line) as CapturedLine), clock)
  return Object.assign(logger, { lines, events: () => lines.map((line) => line.event) })
}
