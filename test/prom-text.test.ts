import test from 'ava'
import { Counter, Histogram, Registry } from 'prom-client'
import { type Selector, SelectorError, ExpositionError, matches, parseSelector, sumSelected } from '../src/traffic/prom-text.ts'

const labels = (record: Record<string, string>) => new Map(Object.entries(record))

// Each row: selector, a series (name and labels), whether the selector selects it.
const MATCHING: Array<[string, string, Record<string, string>, boolean]> = [
  ['http_requests_total', 'http_requests_total', {}, true],
  ['http_requests_total', 'http_requests_total', { path: '/x' }, true],
  ['http_requests_total', 'http_requests', {}, false],
  ['http_requests_total{path!="/ready"}', 'http_requests_total', { path: '/api' }, true],
  ['http_requests_total{path!="/ready"}', 'http_requests_total', { path: '/ready' }, false],
  ['http_requests_total{path!="/ready"}', 'http_requests_total', {}, true],
  ['http_requests_total{path=""}', 'http_requests_total', {}, true],
  ['http_requests_total{path=""}', 'http_requests_total', { path: '/' }, false],
  ['http_requests_total{code=~"5.."}', 'http_requests_total', { code: '503' }, true],
  ['http_requests_total{code=~"5.."}', 'http_requests_total', { code: '1503' }, false],
  ['http_requests_total{code=~"5.."}', 'http_requests_total', { code: '5030' }, false],
  ['http_requests_total{code!~"5..|4.."}', 'http_requests_total', { code: '200' }, true],
  ['http_requests_total{code!~"5..|4.."}', 'http_requests_total', { code: '404' }, false],
  ['http_requests_total{method=~"(?i)get"}', 'http_requests_total', { method: 'GET' }, true],
  ['http_requests_total{method="get"}', 'http_requests_total', { method: 'GET' }, false],
  ['http_requests_total{a="1",b="2"}', 'http_requests_total', { a: '1', b: '2' }, true],
  ['http_requests_total{a="1",b="2"}', 'http_requests_total', { a: '1', b: '3' }, false],
  ['http_requests_total{ a = "1" , }', 'http_requests_total', { a: '1' }, true],
  ['{__name__="http_requests_total"}', 'http_requests_total', {}, true],
  ['{__name__=~"http_.*_total"}', 'http_server_total', {}, true],
  ['{__name__=~"http_.*_total"}', 'grpc_server_total', {}, false],
  ['x{p="a\\"b"}', 'x', { p: 'a"b' }, true],
  ["x{p='a\\'b'}", 'x', { p: "a'b" }, true],
  ['x{p="a\\nb"}', 'x', { p: 'a\nb' }, true],
  ['x{p="a\\\\b"}', 'x', { p: 'a\\b' }, true],
  ['x{p="\\x41\\u00e9\\101"}', 'x', { p: 'AéA' }, true],
  ['x{p=`a\\nb`}', 'x', { p: 'a\\nb' }, true],
  ['x{p=~"a\\\\.b"}', 'x', { p: 'a.b' }, true],
  ['x{p=~"a\\\\.b"}', 'x', { p: 'axb' }, false],
  ['ns:http_requests:rate5m', 'ns:http_requests:rate5m', {}, true],
]

for (const [selector, name, series, expected] of MATCHING) {
  test(`${selector} ${expected ? 'selects' : 'does not select'} ${name}${JSON.stringify(series)}`, (t) => {
    t.is(matches(parseSelector(selector), name, labels(series)), expected)
  })
}

const INVALID: Array<[string, RegExp]> = [
  ['', /metric name/],
  ['{path="/"}', /metric name/],
  ['http_requests_total{', /label name/],
  ['http_requests_total{path}', /=, !=, =~ or !~/],
  ['http_requests_total{path==""}', /quoted value/],
  ['http_requests_total{path="/"', /, or \}/],
  ['http_requests_total{path="/" code="2"}', /, or \}/],
  ['http_requests_total{path="unterminated}', /quoted value/],
  ['http_requests_total{path="\\q"}', /quoted value/],
  ['http_requests_total{path=~"(a"}', /not a regular expression/],
  ['rate(http_requests_total[5m])', /unexpected text/],
  ['http_requests_total{path="/"} or up', /unexpected text/],
  ['1http', /unexpected text/],
  ['x{p="\\UFFFFFFFF"}', /quoted value/],
]

for (const [selector, message] of INVALID) {
  test(`${JSON.stringify(selector)} is refused`, (t) => {
    const error = t.throws(() => parseSelector(selector), { instanceOf: SelectorError })
    t.regex(error!.message, message)
  })
}

/** Real exposition text, written by prom-client, with label values and HELP text that need escaping. */
async function promClientExposition(): Promise<string> {
  const registry = new Registry()
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'Requests\\served\nby "path"',
    labelNames: ['path', 'code'],
    registers: [registry],
  })
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Latency',
    labelNames: ['path'],
    buckets: [0.1, 1],
    registers: [registry],
  })
  requests.inc({ path: '/api', code: '200' }, 5)
  requests.inc({ path: '/ready', code: '200' }, 100)
  requests.inc({ path: 'say "hi"\\\nnow', code: '500' }, 2)
  duration.observe({ path: '/api' }, 0.05)
  duration.observe({ path: '/api' }, 3)
  return registry.metrics()
}

const sum = (text: string, selector: string) => sumSelected(text, parseSelector(selector))

test("prom-client's exposition: the selected series are summed, escapes in label values decoded", async (t) => {
  const text = await promClientExposition()
  t.regex(text, /# HELP http_requests_total Requests\\\\served\\nby "path"/, 'the exposition really has escapes')
  t.deepEqual(sum(text, 'http_requests_total'), { sum: 107, series: 3 })
  t.deepEqual(sum(text, 'http_requests_total{path!="/ready"}'), { sum: 7, series: 2 })
  t.deepEqual(sum(text, 'http_requests_total{path="say \\"hi\\"\\\\\\nnow"}'), { sum: 2, series: 1 })
  t.deepEqual(sum(text, 'http_request_duration_seconds_count'), { sum: 2, series: 1 })
  t.deepEqual(sum(text, 'http_request_duration_seconds_bucket{le="+Inf"}'), { sum: 2, series: 1 })
  t.deepEqual(sum(text, '{__name__=~"http_request_duration_seconds_(count|sum)"}'), { sum: 5.05, series: 2 })
  t.deepEqual(sum(text, 'nothing_here'), { sum: 0, series: 0 })
})

test("the text format's other spellings: timestamps, exponents, tabs, OpenMetrics exemplars and EOF", (t) => {
  const text = [
    '# HELP requests_total Requests.',
    '# TYPE requests_total counter',
    'requests_total{code="200"} 1.5e3 1700000000000',
    'requests_total{code="500"}\t2',
    '  requests_total{code="404",} 3 # {trace_id="abc"} 1 1700000000.123',
    'requests_total_created{code="200"} 1700000000',
    'requests_totally 1000',
    '# EOF',
    '',
  ].join('\n')
  t.deepEqual(sum(text, 'requests_total'), { sum: 1505, series: 3 })
})

test('a line that could be a selected series but is not in the format throws, naming the line', (t) => {
  const bad: Array<[string, RegExp]> = [
    ['requests_total{code="200"} abc', /line 2/],
    ['requests_total{code="200} 1', /line 2/],
    ['requests_total{code="2\\q0"} 1', /line 2/],
    ['requests_total{code="200"}', /line 2/],
    ['requests_total 1 2 3', /line 2/],
  ]
  for (const [line, message] of bad) {
    const error = t.throws(() => sum(`# TYPE requests_total counter\n${line}\n`, 'requests_total'), { instanceOf: ExpositionError })
    t.regex(error!.message, message, line)
  }
  // A selected series whose value is not a number cannot be summed.
  t.throws(() => sum('requests_total NaN\n', 'requests_total'), { instanceOf: ExpositionError, message: /not a finite number/ })
  t.throws(() => sum('requests_total{a="1"} 1e308\nrequests_total{a="2"} 1e308\n', 'requests_total'), {
    instanceOf: ExpositionError,
    message: /sum.*not a finite/,
  })
})

test('a malformed line of another metric is skipped when the selector names its metric, refused when it does not', (t) => {
  const text = 'other_metric{x="1} 1\nrequests_total 4\n'
  t.deepEqual(sum(text, 'requests_total'), { sum: 4, series: 1 })
  t.throws(() => sum(text, '{__name__=~"requests_.*"}'), { instanceOf: ExpositionError })
})

test('a selector keeps its text for the report', (t) => {
  const selector: Selector = parseSelector('  http_requests_total{path!="/ready"} ')
  t.is(selector.text, 'http_requests_total{path!="/ready"}')
})

test("any selector text and any exposition either parse or throw the module's own error, never anything else", async (t) => {
  const fc = (await import('fast-check')).default
  const piece = fc.constantFrom(
    '\\U0011FFFF',
    '\\x4',
    '1e308',
    'http_requests_total',
    '{',
    '}',
    ',',
    '=',
    '!=',
    '=~',
    '!~',
    '"',
    "'",
    '`',
    '\\',
    'a',
    '(',
    '.*',
    ' ',
    '\n',
    '#',
    '1',
    'NaN',
    '+Inf',
    'path',
  )
  const text = fc.oneof(
    fc.string(),
    fc.array(piece, { maxLength: 30 }).map((parts) => parts.join('')),
  )
  fc.assert(
    fc.property(text, text, (selectorText, exposition) => {
      let selector: Selector
      try {
        selector = parseSelector(selectorText)
      } catch (error) {
        if (!(error instanceof SelectorError)) throw error
        selector = parseSelector('http_requests_total')
      }
      try {
        const { sum, series } = sumSelected(exposition, selector)
        return Number.isFinite(sum) && series >= 0
      } catch (error) {
        if (!(error instanceof ExpositionError)) throw error
        return true
      }
    }),
    { numRuns: 3_000 },
  )
  t.pass()
})
