/**
 * The sidecar's own clients misbehaving: hooks that hang up before the answer, a hook after the drain, many
 * hooks at once, SIGTERM before, during and after a drain (repeated signals: test/signals.test.ts). Black box against the bundle,
 * with margins generous enough for two busy cores; the exact sequencing is unit-tested with a fake clock.
 */
import { request } from 'node:http'
import { connect } from 'node:net'
import test from 'ava'
import { readFileSync } from 'node:fs'
import type { DrainSummary } from '../src/drain.ts'
import { holdHooks, processMemory, startHeldDrain } from '../sim/fakes/held-hooks.ts'
import { type Sidecar, startSidecar } from '../sim/fakes/sidecar-process.ts'

/** The sidecar's memory limit in the shipped manifests. */
const MEMORY_LIMIT_BYTES = (() => {
  const yaml = readFileSync(new URL('../manifests/components/drain-coordinator-sidecar/sidecar.yaml', import.meta.url), 'utf8')
  return Number(/limits:\s*\n\s*memory: (\d+)Mi/.exec(yaml)![1]) * 1024 * 1024
})()

const getJson = async (url: string) => {
  const response = await fetch(url)
  return { status: response.status, body: (await response.json()) as DrainSummary }
}

async function metric(sidecar: Sidecar, name: string, labels: string): Promise<number | undefined> {
  const text = await (await fetch(`${sidecar.url}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`))
  return line === undefined ? undefined : Number(line.split(' ').at(-1))
}

/** A hook that hangs up once the sidecar has started the drain for it, before the drain answers. */
async function abandonedHook(sidecar: Sidecar): Promise<void> {
  const req = request(`${sidecar.url}/prestop`, { agent: false })
  req.on('error', () => {})
  req.end()
  // Hanging up only after the drain started: on a busy machine a request cut off sooner may never reach the handler.
  await sidecar.waitForLog('drain_started')
  req.destroy()
}

const allJson = (sidecar: Sidecar) => sidecar.logs.filter((l) => l.event === 'non_json_line')

test('a hook that hangs up before the answer does not stop the drain; a later hook gets the same summary at once', async (t) => {
  const sidecar = await startSidecar({ DRAIN_SETTLE: '5s', DRAIN_TIMEOUT: '10s' })
  t.teardown(() => sidecar.stop())
  await abandonedHook(sidecar)
  const finished = await sidecar.waitForLog('drain_finished')
  t.is(finished.outcome, 'completed')
  const startedAt = performance.now()
  const again = await getJson(`${sidecar.url}/prestop`)
  const ms = performance.now() - startedAt
  t.is(again.status, 200)
  t.is(again.body.startedAt, finished.startedAt as string)
  t.is(again.body.outcome, 'completed')
  // A second drain would take DRAIN_SETTLE (5s) again; a generous bound for two busy cores.
  t.true(ms < 4_000, `answered after ${Math.round(ms)}ms`)
  // The log line may reach us after the answer: wait for it rather than look once.
  t.truthy(await sidecar.waitForLog('drain_joined', { state: 'drained' }))
  t.is(await metric(sidecar, 'drain_coordinator_drains_total', 'outcome="completed"'), 1)
  t.is(await metric(sidecar, 'drain_coordinator_hook_requests_total', 'result="answered"'), 1)
  t.is(await metric(sidecar, 'drain_coordinator_hook_requests_total', 'result="disconnected"'), 1)
  t.truthy(await sidecar.waitForLog('hook_disconnected'))
  t.deepEqual(allJson(sidecar), [])
  t.is((await fetch(`${sidecar.url}/healthz`)).status, 200)
})

test("many concurrent hooks all get the one drain's summary", async (t) => {
  const sidecar = await startSidecar({ DRAIN_SETTLE: '500ms', DRAIN_TIMEOUT: '10s' })
  t.teardown(() => sidecar.stop())
  const answers = await Promise.all(Array.from({ length: 100 }, () => getJson(`${sidecar.url}/prestop`)))
  t.true(answers.every((a) => a.status === 200))
  t.is(new Set(answers.map((a) => a.body.startedAt)).size, 1)
  t.is(sidecar.logs.filter((l) => l.event === 'drain_started').length, 1)
  t.is(await metric(sidecar, 'drain_coordinator_drains_total', 'outcome="completed"'), 1)
  t.is(await metric(sidecar, 'drain_coordinator_hook_requests_total', 'result="answered"'), 100)
})

test('SIGTERM before any hook starts a drain, and the process exits 0 once it is over', async (t) => {
  const sidecar = await startSidecar({ DRAIN_SETTLE: '300ms', DRAIN_TIMEOUT: '10s' })
  t.teardown(() => sidecar.stop())
  sidecar.child.kill('SIGTERM')
  const { code } = await sidecar.exited
  t.is(code, 0)
  const started = sidecar.logs.find((l) => l.event === 'drain_started')
  t.is(started?.by, 'signal')
  const events = sidecar.logs.map((l) => l.event)
  t.true(events.indexOf('drain_finished') < events.indexOf('exiting'))
})

test('SIGTERM during a drain: the waiting hook is answered with the summary before the process exits 0', async (t) => {
  const sidecar = await startSidecar({ DRAIN_SETTLE: '1s', DRAIN_TIMEOUT: '10s' })
  t.teardown(() => sidecar.stop())
  const hook = getJson(`${sidecar.url}/prestop`)
  await sidecar.waitForLog('drain_started')
  sidecar.child.kill('SIGTERM')
  const answer = await hook
  t.is(answer.status, 200)
  t.is(answer.body.trigger, 'hook')
  t.is(answer.body.outcome, 'completed')
  t.is((await sidecar.exited).code, 0)
  // The answered hook's keep-alive connection must not hold the exit (it used to, until the 2s close grace ran out).
  t.like(await sidecar.waitForLog('server_closed'), { how: 'closed' })
  t.is(sidecar.logs.filter((l) => l.event === 'drain_started').length, 1)
})

test('SIGTERM after a drain exits 0 without draining again', async (t) => {
  const sidecar = await startSidecar({ DRAIN_SETTLE: '200ms', DRAIN_TIMEOUT: '10s' })
  t.teardown(() => sidecar.stop())
  t.is((await getJson(`${sidecar.url}/prestop`)).status, 200)
  sidecar.child.kill('SIGTERM')
  t.is((await sidecar.exited).code, 0)
  t.is(sidecar.logs.filter((l) => l.event === 'drain_started').length, 1)
  t.like(
    sidecar.logs.find((l) => l.event === 'signal_received'),
    { signal: 'SIGTERM', state: 'drained' },
  )
})

/** Sends raw bytes and collects what comes back until the server closes the connection (or `timeoutMs`). */
function raw(
  sidecar: Sidecar,
  chunks: string[],
  { gapMs = 0, timeoutMs = 20_000, end = false } = {},
): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve) => {
    const startedAt = performance.now()
    const socket = connect(sidecar.port, '127.0.0.1')
    let text = ''
    const done = () => resolve({ text, closedAfterMs: performance.now() - startedAt })
    const timer = setTimeout(() => socket.destroy(), timeoutMs)
    socket.setEncoding('utf8').on('data', (d: string) => (text += d))
    socket.on('close', () => {
      clearTimeout(timer)
      done()
    })
    socket.on('error', () => {})
    let i = 0
    const next = () => {
      if (socket.destroyed) return
      if (i >= chunks.length) return void (end && socket.end())
      socket.write(chunks[i++]!)
      setTimeout(next, gapMs)
    }
    socket.on('connect', next)
  })
}

test('hostile requests get clean errors: unknown paths and methods, garbage, huge headers, huge bodies', async (t) => {
  const sidecar = await startSidecar({ DRAIN_SETTLE: '200ms', DRAIN_TIMEOUT: '10s', DRAIN_HOOK_TOKEN: 'hook-token-123456' })
  t.teardown(() => sidecar.stop())
  const notFound = await fetch(`${sidecar.url}/nope`)
  t.is(notFound.status, 404)
  t.like(await notFound.json(), { error: 'not found' })
  const wrongMethod = await fetch(`${sidecar.url}/prestop`, { method: 'DELETE' })
  t.is(wrongMethod.status, 405)
  t.is(wrongMethod.headers.get('allow'), 'GET, POST')
  t.is((await fetch(`${sidecar.url}/metrics`, { method: 'PATCH' })).status, 405)
  const garbage = await raw(sidecar, ['\x16\x03\x01 this is not http\r\n\r\n'])
  t.regex(garbage.text, /^HTTP\/1\.1 400/)
  const bigHeader = await raw(sidecar, [`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(32 * 1024)}\r\n\r\n`])
  t.regex(bigHeader.text, /^HTTP\/1\.1 431/)
  // 8 MiB bodies: refused or answered without being read, and the sidecar stays healthy.
  const body = new Uint8Array(8 * 1024 * 1024)
  t.is((await fetch(`${sidecar.url}/prestop`, { method: 'POST', body })).status, 401)
  t.is((await fetch(`${sidecar.url}/nope`, { method: 'POST', body })).status, 404)
  t.is(sidecar.logs.filter((l) => l.event === 'drain_started').length, 0)
  // Authorized, but a body no hook sends: refused before anything starts.
  const tooLarge = await fetch(`${sidecar.url}/prestop`, { method: 'POST', body, headers: { 'x-drain-token': 'hook-token-123456' } })
  t.is(tooLarge.status, 413)
  t.like(await tooLarge.json(), { error: 'payload too large' })
  t.is((await fetch(`${sidecar.url}/ready`)).status, 200, 'nothing started')
  // A small body is read, dropped, and the caller held as usual.
  const hook = await fetch(`${sidecar.url}/prestop`, {
    method: 'POST',
    body: '{"reason":"rollout"}',
    headers: { 'x-drain-token': 'hook-token-123456', 'content-type': 'application/json' },
  })
  t.is(hook.status, 200)
  t.like(await hook.json(), { outcome: 'completed' })
  t.is((await fetch(`${sidecar.url}/healthz`)).status, 200)
  t.is(sidecar.logs.filter((l) => l.level === 'error' || l.event === 'non_json_line').length, 0)
})

test('a POST /prestop whose body is malformed or breaks off starts no drain: the caller gets a 4xx, the pod stays in service', async (t) => {
  const sidecar = await startSidecar({ DRAIN_SETTLE: '200ms', DRAIN_TIMEOUT: '10s' })
  t.teardown(() => sidecar.stop())
  const head = 'POST /prestop HTTP/1.1\r\nHost: x\r\n'
  // A chunk size that is not hex: Node's parser rejects the request after its headers have started the handler.
  const malformed = await raw(sidecar, [`${head}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`])
  t.regex(malformed.text, /^HTTP\/1\.1 400/)
  // A declared length the client never sends: it hangs up (half-close) after 10 bytes.
  await raw(sidecar, [`${head}Content-Length: 1000\r\n\r\n0123456789`], { end: true })
  // A GET carrying a body is held to the same rule.
  const get = await raw(sidecar, [`GET /prestop HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n`])
  t.regex(get.text, /^HTTP\/1\.1 400/)
  // All three handlers have given up on their body (an event, not a sleep): then nothing may have started.
  await sidecar.waitForLogs('hook_rejected', {}, 3, 10_000)
  t.true(sidecar.logs.filter((l) => l.event === 'hook_rejected').every((l) => l.reason === 'request body broken off or malformed'))
  t.is((await fetch(`${sidecar.url}/ready`)).status, 200, 'still in service')
  t.is(sidecar.logs.filter((l) => l.event === 'drain_started').length, 0)
  t.is(await metric(sidecar, 'drain_coordinator_hook_requests_total', 'result="bad_request"'), 3)
  t.is(await metric(sidecar, 'drain_coordinator_drains_total', 'outcome="completed"'), 0)
  // A well-formed hook still drains.
  t.like((await getJson(`${sidecar.url}/prestop`)).body, { outcome: 'completed' })
})

test('a client that dribbles its headers is cut off by headersTimeout (DRAIN_HEADERS_TIMEOUT), not kept forever', async (t) => {
  const sidecar = await startSidecar({ DRAIN_SETTLE: '200ms', DRAIN_TIMEOUT: '10s', DRAIN_HEADERS_TIMEOUT: '1s' })
  t.teardown(() => sidecar.stop())
  // The dribble would last 12 s: long past the limit.
  const chunks = ['GET /healthz HTTP/1.1\r\n', ...Array.from({ length: 60 }, (_, i) => `X-Slow-${i}: y\r\n`)]
  const { text, closedAfterMs } = await raw(sidecar, chunks, { gapMs: 200, timeoutMs: 20_000 })
  t.regex(text, /^HTTP\/1\.1 408/)
  // Cut between the limit and the limit plus the check interval (half of it here), with slack for busy cores.
  t.true(closedAfterMs >= 900 && closedAfterMs < 6_000, `closed after ${Math.round(closedAfterMs)}ms`)
  t.is((await fetch(`${sidecar.url}/healthz`)).status, 200)
})

// The two load tests run one at a time, before the others: their bounds are loose, but 2000 sockets and a crowd
// of dribbling clients should not also share the cores with the rest of this file.
test.serial(
  "2000 concurrent held hooks all get the one summary soon after the drain's end, and memory stays under the manifests' limit",
  async (t) => {
    const run = await startHeldDrain()
    t.teardown(() => run.close())
    const idle = await processMemory(run.sidecar.child.pid!)
    const { answers } = await holdHooks(run.sidecar, 2000)
    const held = await processMemory(run.sidecar.child.pid!)
    run.release()
    const all = await answers
    const finishedAt = await run.finishedAt()
    const peak = (await processMemory(run.sidecar.child.pid!)).peak
    t.true(all.every((a) => a.status === 200))
    t.is(new Set(all.map((a) => (JSON.parse(a.body) as DrainSummary).startedAt)).size, 1)
    t.like(JSON.parse(all[0]!.body), { outcome: 'completed', trigger: 'hook' })
    // The 100 ms goal is measured by `npm run bench` (scripts/bench-hooks.ts); here a bound for two busy cores.
    const lastMs = Math.max(...all.map((a) => a.at)) - finishedAt
    t.true(lastMs < 2_000, `last answer ${lastMs}ms after the drain's end`)
    t.true(
      peak < MEMORY_LIMIT_BYTES,
      `peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB (idle ${(idle.rss / 2 ** 20).toFixed(0)}, held ${(held.rss / 2 ** 20).toFixed(0)}), limit ${MEMORY_LIMIT_BYTES / 2 ** 20} MiB`,
    )
    t.is(await metric(run.sidecar, 'drain_coordinator_hook_requests_total', 'result="answered"'), 2000)
  },
)

test.serial("hundreds of clients dribbling headers a byte at a time delay neither /healthz, /ready nor a held hook's answer", async (t) => {
  const run = await startHeldDrain()
  t.teardown(() => run.close())
  const request = 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'y'.repeat(4_000)
  const dribblers = Array.from({ length: 300 }, () => {
    const socket = connect(run.sidecar.port, '127.0.0.1')
    socket.on('error', () => {})
    let sent = 0
    const timer = setInterval(() => socket.writable && sent < request.length && socket.write(request[sent++]!), 50)
    return { socket, timer, sent: () => sent }
  })
  t.teardown(() => dribblers.forEach((d) => (clearInterval(d.timer), d.socket.destroy())))
  // Every dribbler connected and under way.
  for (let i = 0; dribblers.some((d) => d.sent() < 3); i++) {
    if (i === 500) return t.fail('the dribblers never got going')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const timed = async (path: string) => {
    const startedAt = performance.now()
    const response = await fetch(`${run.sidecar.url}${path}`)
    await response.text()
    return { status: response.status, ms: performance.now() - startedAt }
  }
  const probes = []
  for (let i = 0; i < 20; i++) probes.push(await timed('/healthz'), await timed('/ready'))
  t.true(probes.every((p) => p.status === 200))
  const { answers } = await holdHooks(run.sidecar, 1)
  for (let i = 0; i < 10; i++) probes.push(await timed('/healthz'))
  run.release()
  const [answer] = await answers
  const answerMs = answer!.at - (await run.finishedAt())
  t.is(answer!.status, 200)
  t.true(
    dribblers.every((d) => !d.socket.destroyed),
    'the dribblers were still connected throughout',
  )
  const slowest = Math.max(...probes.map((p) => p.ms))
  // Generous bounds for two busy cores (the slowest of 50 real-time samples has a long tail); the point is that
  // none waits for the dribblers, which would take the 10 s headers timeout at least.
  t.true(slowest < 5_000, `slowest probe ${slowest.toFixed(0)}ms`)
  t.true(answerMs < 5_000, `hook answered ${answerMs}ms after the drain's end`)
})
