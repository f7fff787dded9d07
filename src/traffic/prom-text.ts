/**
 * DRAIN_TRAFFIC_METRIC: a Prometheus series selector (`http_requests_total{path!="/ready"}`), and the sum of the
 * series it selects in a text exposition. Pure. No package does this for us: prom-client writes the format but
 * does not read it, parse-prometheus-text-format (unmaintained since 2019) folds `_count`/`_bucket` series into
 * their histogram, so a selector on a series name cannot be applied to its output, and Prometheus's own PromQL
 * grammar (@prometheus-io/lezer-promql) parses the whole language into a syntax tree we would still have to walk
 * and unquote. A selector is a small grammar; this file is it.
 *
 * Selector (PromQL's instant vector selector): a metric name, then optionally `{label op "value", ...}` with op
 * `=`, `!=`, `=~` or `!~`; values quoted with `"`, `'` (Go escapes) or backticks (raw). Regular expressions are
 * fully anchored as in PromQL; a leading `(?i)` makes one case-insensitive. A missing label matches as "".
 *
 * Exposition (text format 0.0.4, and OpenMetrics' sample lines): `name{label="value",...} value [timestamp]`,
 * label values escaped with `\\`, `\"` and `\n`; `#` lines are comments (HELP, TYPE, EOF, exemplars after a value).
 */

export type Matcher = { label: string; op: '=' | '!=' | '=~' | '!~'; value: string; regex?: RegExp }
export type Selector = { text: string; matchers: Matcher[] }

export class SelectorError extends Error {
  override name = 'SelectorError'
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/
const GO_ESCAPES: Record<string, string> = {
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '\\': '\\',
  "'": "'",
  '"': '"',
}

/** Parses a selector; throws a SelectorError saying where it stopped making sense. */
export function parseSelector(text: string): Selector {
  let rest = text.trim()
  const fail = (what: string): never => {
    throw new SelectorError(`${what} at ${JSON.stringify(rest.slice(0, 20) || '(end)')}`)
  }
  const skipSpace = () => (rest = rest.replace(/^\s+/, ''))
  const matchers: Matcher[] = []
  const name = NAME.exec(rest)?.[0]
  if (name !== undefined) {
    matchers.push({ label: '__name__', op: '=', value: name })
    rest = rest.slice(name.length)
    skipSpace()
  }
  if (rest.startsWith('{')) {
    rest = rest.slice(1)
    for (;;) {
      skipSpace()
      if (rest.startsWith('}')) break
      const label = LABEL.exec(rest)?.[0] ?? fail('expected a label name')
      rest = rest.slice(label.length)
      skipSpace()
      const op = (['=~', '!~', '!=', '='] as const).find((o) => rest.startsWith(o)) ?? fail('expected =, !=, =~ or !~')
      rest = rest.slice(op.length)
      skipSpace()
      const [value, after] = readQuoted(rest) ?? fail('expected a quoted value')
      rest = after
      matchers.push(withRegex({ label, op, value }))
      skipSpace()
      if (rest.startsWith(',')) rest = rest.slice(1)
      else if (!rest.startsWith('}')) fail('expected , or }')
    }
    rest = rest.slice(1)
    skipSpace()
  }
  if (rest !== '') fail('unexpected text')
  if (!matchers.some((m) => m.label === '__name__')) fail('expected a metric name')
  return { text: text.trim(), matchers }
}

function withRegex(matcher: Matcher): Matcher {
  if (matcher.op !== '=~' && matcher.op !== '!~') return matcher
  const caseless = matcher.value.startsWith('(?i)')
  try {
    return { ...matcher, regex: new RegExp(`^(?:${caseless ? matcher.value.slice(4) : matcher.value})$`, caseless ? 'i' : '') }
  } catch (error) {
    throw new SelectorError(`${JSON.stringify(matcher.value)} is not a regular expression (${(error as Error).message})`)
  }
}

/** A PromQL string literal at the start of `text`: its value and what follows; undefined if there is none. */
function readQuoted(text: string): [string, string] | undefined {
  const quote = text[0]
  if (quote === '`') {
    const end = text.indexOf('`', 1)
    return end === -1 ? undefined : [text.slice(1, end), text.slice(end + 1)]
  }
  if (quote !== '"' && quote !== "'") return undefined
  let value = ''
  for (let i = 1; i < text.length; i++) {
    const c = text[i]!
    if (c === quote) return [value, text.slice(i + 1)]
    if (c === '\n') return undefined
    if (c !== '\\') {
      value += c
      continue
    }
    const e = text[++i]
    if (e === undefined) return undefined
    if (e in GO_ESCAPES) value += GO_ESCAPES[e]
    else {
      const form = e === 'x' ? /^[0-9a-fA-F]{2}/ : e === 'u' ? /^[0-9a-fA-F]{4}/ : e === 'U' ? /^[0-9a-fA-F]{8}/ : /^[0-7]{2}/
      const digits = form.exec(text.slice(i + 1))?.[0]
      if (digits === undefined || !/[xuU0-7]/.test(e)) return undefined
      const code = Number.parseInt(/[0-7]/.test(e) ? e + digits : digits, /[0-7]/.test(e) ? 8 : 16)
      if (code > 0x10ffff) return undefined
      value += String.fromCodePoint(code)
      i += digits.length
    }
  }
  return undefined
}

export function matches(selector: Selector, name: string, labels: ReadonlyMap<string, string>): boolean {
  return selector.matchers.every((m) => {
    const value = m.label === '__name__' ? name : (labels.get(m.label) ?? '')
    switch (m.op) {
      case '=':
        return value === m.value
      case '!=':
        return value !== m.value
      case '=~':
        return m.regex!.test(value)
      case '!~':
        return !m.regex!.test(value)
    }
  })
}

export class ExpositionError extends Error {
  override name = 'ExpositionError'
}

/**
 * The sum of the samples the selector selects, and how many there were. A line that could be one of them but is
 * not in the format throws an ExpositionError naming the line: the caller cannot tell what it held.
 */
export function sumSelected(text: string, selector: Selector): { sum: number; series: number } {
  // With a fixed metric name, a line that does not start with it cannot be selected and is not parsed at all.
  const fixedName = selector.matchers.find((m) => m.label === '__name__' && m.op === '=')?.value
  let sum = 0
  let series = 0
  let lineNumber = 0
  for (const raw of text.split('\n')) {
    lineNumber++
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    if (fixedName !== undefined && !(line.startsWith(fixedName) && /^[\s{]/.test(line.slice(fixedName.length)))) continue
    const sample = parseSample(line)
    if (sample === undefined)
      throw new ExpositionError(`line ${lineNumber} is not a sample in the text format: ${JSON.stringify(line.slice(0, 120))}`)
    if (!matches(selector, sample.name, sample.labels)) continue
    if (!Number.isFinite(sample.value))
      throw new ExpositionError(`line ${lineNumber}: the value ${sample.valueText} is not a finite number`)
    sum += sample.value
    series++
  }
  if (!Number.isFinite(sum)) throw new ExpositionError('the sum of the selected series is not a finite number')
  return { sum, series }
}

const VALUE = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/

function parseSample(line: string): { name: string; labels: Map<string, string>; value: number; valueText: string } | undefined {
  const name = NAME.exec(line)?.[0]
  if (name === undefined) return undefined
  let rest = line.slice(name.length)
  const labels = new Map<string, string>()
  if (rest.startsWith('{')) {
    rest = rest.slice(1).trimStart()
    while (!rest.startsWith('}')) {
      const label = LABEL.exec(rest)?.[0]
      if (label === undefined) return undefined
      rest = rest.slice(label.length).trimStart()
      if (!rest.startsWith('=')) return undefined
      rest = rest.slice(1).trimStart()
      const value = readLabelValue(rest)
      if (value === undefined) return undefined
      labels.set(label, value[0])
      rest = value[1].trimStart()
      if (rest.startsWith(',')) rest = rest.slice(1).trimStart()
      else if (!rest.startsWith('}')) return undefined
    }
    rest = rest.slice(1)
  }
  if (!/^[ \t]/.test(rest)) return undefined
  // The value, then an optional timestamp, then (OpenMetrics) an optional exemplar after `#`.
  const [valueText = '', timestamp, ...more] = rest
    .split('#')[0]!
    .trim()
    .split(/[ \t]+/)
  if (!VALUE.test(valueText) || more.length > 0 || (timestamp !== undefined && !/^-?\d+(?:\.\d+)?$/.test(timestamp))) return undefined
  const value = valueText.endsWith('Inf') ? (valueText.startsWith('-') ? -Infinity : Infinity) : Number(valueText)
  return { name, labels, value, valueText }
}

/** A label value in the exposition's quoting: only `\\`, `\"` and `\n` are escapes. */
function readLabelValue(text: string): [string, string] | undefined {
  if (!text.startsWith('"')) return undefined
  let value = ''
  for (let i = 1; i < text.length; i++) {
    const c = text[i]!
    if (c === '"') return [value, text.slice(i + 1)]
    if (c !== '\\') {
      value += c
      continue
    }
    const e = text[++i]
    if (e === '\\' || e === '"') value += e
    else if (e === 'n') value += '\n'
    else return undefined
  }
  return undefined
}
