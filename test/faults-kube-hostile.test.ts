/**
 * A hostile or broken API server, against the built sidecar (the bundle the image runs), one answer class per
 * test: a watch line of tens of MB, a watch stream that never sends a newline, LIST pages without end, a 100 MB
 * page, a small gzip body that inflates to a GB, a redirect to plain http, values nested 100,000 levels deep,
 * fields of the wrong type. In every case the fake server's own state says the pod is still ready, so the only
 * true answer is `timeout`: the hook is held to DRAIN_TIMEOUT (answered on time), the process stays far below
 * the manifests' 192Mi memory limit, and a log line says which bound or check was hit.
 */
import test, { type ExecutionContext } from 'ava'
import { type Fault, type FakeKube, startFakeKube } from '../sim/fakes/fake-kube.ts'
import { processMemory } from '../sim/fakes/held-hooks.ts'
import { HOSTILE, podSlice, startPodSidecar } from '../sim/fakes/hostile-kube.ts'
import { READY } from '../sim/fakes/fixtures.ts'
import type { LogLine } from '../sim/fakes/sidecar-process.ts'

const NS = 'shop'
const POD_IP = '10.0.0.7'
const MiB = 1024 * 1024
/** The issue's bound for any hostile answer; the manifests' limit is 192Mi. */
const MAX_PEAK_RSS = 150 * MiB
const SLACK_MS = 4_000

async function drainAgainst(t: ExecutionContext, hostile: (kube: FakeKube) => void | Promise<void>, { timeoutMs = 3_000 } = {}) {
  const kube = await startFakeKube({ namespace: NS })
  t.teardown(() => kube.close())
  kube.upsert(podSlice(NS, POD_IP, READY))
  await hostile(kube)
  const sidecar = await startPodSidecar(kube, NS, POD_IP, timeoutMs)
  t.teardown(() => sidecar.stop())
  const startedAt = performance.now()
  const summary = (await (await fetch(`${sidecar.url}/prestop`)).json()) as { outcome: string }
  const ms = performance.now() - startedAt
  const rss = (await processMemory(sidecar.child.pid!)).peak
  t.is(summary.outcome, 'timeout', 'held to the deadline: nothing proved the pod gone')
  t.true(ms < timeoutMs + SLACK_MS, `answered after ${Math.round(ms)}ms (DRAIN_TIMEOUT ${timeoutMs}ms)`)
  t.true(rss < MAX_PEAK_RSS, `peak RSS ${(rss / MiB).toFixed(1)} MiB`)
  return { kube, logs: sidecar.logs }
}

const errorOf = (logs: LogLine[], event: string) => logs.filter((l) => l.event === event).map((l) => JSON.stringify(l.error))

const hostile = (name: string) => {
  const found = HOSTILE.find((h) => h.name === name)
  if (!found) throw new Error(`no hostile answer named ${name}`)
  return (kube: FakeKube) => kube.alwaysFault(found.fault(kube, POD_IP), found.verb)
}

test.serial('a watch line of 20 MB is refused at the line bound, and the wait holds', async (t) => {
  const { logs } = await drainAgainst(t, hostile('watch line of 20 MB'))
  t.true(errorOf(logs, 'endpoint_watch_failed').some((e) => /KUBE_LIMIT_EXCEEDED.*MAX_EVENT_BYTES \(one watch line\)/.test(e)))
})

test.serial('a watch stream that never sends a newline is cut at the line bound without stalling the process', async (t) => {
  const { logs } = await drainAgainst(t, hostile('watch stream without newline'))
  t.true(errorOf(logs, 'endpoint_watch_failed').some((e) => /MAX_EVENT_BYTES/.test(e)))
})

test.serial('LIST pages without end (each nearly 1 MB of slices naming the pod) stop at the LIST bound, in bounded memory', async (t) => {
  // 64 MiB of pages take a few seconds to serve and parse; a busy machine gets 15 s to reach the bound.
  const { kube, logs } = await drainAgainst(t, hostile('endless LIST pages'), { timeoutMs: 15_000 })
  t.true(
    errorOf(logs, 'endpoint_list_failed').some((e) => /MAX_LIST_BYTES \(all pages of one LIST\)|MAX_LIST_PAGES/.test(e)),
    `${kube.countRequests('list')} LIST requests`,
  )
})

test.serial('a 100 MB LIST page is refused at the page bound (asked again with fewer slices, down to one)', async (t) => {
  const { kube, logs } = await drainAgainst(t, hostile('LIST page of 100 MB'))
  t.true(errorOf(logs, 'endpoint_list_failed').some((e) => /MAX_PAGE_BYTES \(one LIST page\)/.test(e)))
  t.true(
    kube.requests.some((r) => r.verb === 'list' && r.query.get('limit') === '1'),
    'the page was asked for again with limit=1',
  )
})

test.serial('a gzip body that inflates to 1 GB is cut at the page bound as it inflates; identity encoding is asked for', async (t) => {
  const { kube, logs } = await drainAgainst(t, hostile('gzip inflating to 1 GB'))
  t.true(errorOf(logs, 'endpoint_list_failed').some((e) => /MAX_PAGE_BYTES/.test(e)))
  t.true(kube.requests.length > 0 && kube.requests.every((r) => r.acceptEncoding === 'identity'))
})

test.serial('a 307 to plain http is an error naming the status and Location, never followed', async (t) => {
  const plain = await startFakeKube({ namespace: NS, tls: false })
  t.teardown(() => plain.close())
  // The plain-http server has no slice with the pod: following the redirect would release the hook at once.
  const location = `${plain.url}/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices?limit=25`
  const redirect: Fault = { kind: 'status', status: 307, body: '', headers: { location } }
  const { logs } = await drainAgainst(t, (kube) => kube.alwaysFault(redirect, 'list'))
  t.is(plain.requests.length, 0, 'nothing was sent to the redirect target')
  t.true(errorOf(logs, 'endpoint_list_failed').some((e) => e.includes('status 307') && e.includes('redirect to') && e.includes(plain.url)))
})

test.serial(
  'values nested 100,000 levels deep in a slice make it invalid (it holds the hook), and nothing overflows the stack',
  async (t) => {
    const { logs } = await drainAgainst(t, hostile('nesting 100,000 deep'))
    const invalid = logs.filter((l) => l.event === 'endpoint_slice_invalid')
    t.is(invalid.length, 1, 'logged once, however many LISTs repeat it')
    t.like(invalid[0], { level: 'warn', slice: 'web-abcde' })
    t.regex(String(invalid[0]!.problem), /^metadata\.labels\.app: expected string, got Array/)
    t.false(logs.some((l) => l.event === 'endpoint_wait_error' || l.event === 'phase_failed'))
  },
)

test.serial('a slice whose endpoints is a string is invalid, not "pod absent": the hook is held and the slice named', async (t) => {
  const { logs } = await drainAgainst(t, hostile('wrong types (endpoints: "x")'))
  const invalid = logs.find((l) => l.event === 'endpoint_slice_invalid')
  t.like(invalid, { slice: 'web-abcde' })
  t.regex(String(invalid?.problem), /^endpoints: expected Array, got "x"/)
})
