/**
 * Parses the duration strings the configuration accepts: `500ms`, `5s`, `2m`, `1m30s`, `1h`, or a bare number
 * of seconds (`5`, `0.5`). Pure; returns milliseconds, or undefined for anything else.
 */

const UNIT_MS = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const
const COMPOSITE = /^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$/
const BARE_SECONDS = /^\d+(?:\.\d+)?$/

export const DURATION_FORM = 'a duration such as 500ms, 5s, 2m, 1m30s, or a number of seconds'

export function parseDuration(text: string): number | undefined {
  const raw = text.trim()
  if (raw === '') return undefined
  if (BARE_SECONDS.test(raw)) return Math.round(Number(raw) * 1_000)
  const match = COMPOSITE.exec(raw)
  if (!match) return undefined
  const [, h, m, s, ms] = match
  const parts = [
    [h, UNIT_MS.h],
    [m, UNIT_MS.m],
    [s, UNIT_MS.s],
    [ms, UNIT_MS.ms],
  ] as const
  let total = 0
  for (const [value, unit] of parts) if (value !== undefined) total += Number(value) * unit
  return Math.round(total)
}
