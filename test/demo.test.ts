/**
 * `npm run demo` shows the same rollout without a preStop hook and with drain-coordinator, and the two side by
 * side. Small and with wide margins, like test/simulator.test.ts: the load balancer lags 1 s, DRAIN_SETTLE is 2.5 s.
 */
import test from 'ava'
import { runDemo } from '../sim/demo.ts'

test('the demo runs the rollout without a hook and with drain-coordinator, and prints them side by side', async (t) => {
  const lines: string[] = []
  const code = await runDemo({
    ratePerSecond: 100,
    settleMs: 2_500,
    warmupMs: 1_000,
    addressPrefix: '127.0.4',
    print: (line) => lines.push(line),
  })
  const output = lines.join('\n')
  const rows = output.split('\n')
  t.is(code, 0, output)
  // The first line says where the pods ran: their own network namespaces as root, loopback addresses otherwise.
  t.regex(rows[0] ?? '', process.getuid?.() === 0 ? /^network: each pod in its own network namespace/ : /^network: not root/)
  t.regex(output, /1\. Without a preStop hook/)
  t.regex(output, /2\. With drain-coordinator/)
  // One timeline each: the pod's deletion appears twice, SIGTERM to the app twice.
  t.is(output.match(/pod web-old-0 deleted/g)?.length, 2, output)
  t.is(output.match(/web-old-0: SIGTERM to the app/g)?.length, 2, output)
  t.regex(output, /web-old-0: preStop hook answered/)
  // The side-by-side summary: both columns on one header line, then a value for each in every row.
  const header = rows.findIndex((line) => /no preStop hook\s+drain-coordinator/.test(line))
  t.true(header >= 0, output)
  const failed = rows.slice(header).find((line) => line.trimStart().startsWith('requests failed'))
  t.regex(failed ?? '', /requests failed\s+[1-9]\d*.*\s0$/, output)
  t.regex(rows.slice(header).find((line) => line.includes('preStop hook held')) ?? '', /no hook\s+\d+ ms$/)
})
