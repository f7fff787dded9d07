/**
 * Black-box: the built bundle as a process, against the fake API server (HTTPS, test CA, bearer token), a fake
 * Envoy admin and a fake app. Real time, so durations are short and assertions tolerant.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import test from 'ava'
import { startFakeApp } from './helpers/fake-app.ts'
import { startFakeEnvoy } from '../sim/fakes/fake-envoy.ts'
import { type FakeKube, startFakeKube } from '../sim/fakes/fake-kube.ts'
import { endpointSlice, READY, TERMINATING } from '../sim/fakes/fixtures.ts'
import { BUNDLE, NODE_FLAGS, startSidecar } from '../sim/fakes/sidecar-process.ts'

const run = promisify(execFile)
const me = { podName: 'web-1', uid: 'uid-1' }
const other = { ip: '10.0.0.2', podName: 'web-2', uid: 'uid-2', ...READY }

async function cluster(t: import('ava').ExecutionContext) {
  const kube = await startFakeKube()
  const dir = await mkdtemp(join(tmpdir(), 'dc-sidecar-'))
  const tokenFile = join(dir, 'token')
  await writeFile(tokenFile, 'test-token\n')
  t.teardown(() => kube.close())
  const env = (extra: Record<string, string> = {}) => ({
    DRAIN_KUBE_API_URL: kube.url,
    DRAIN_KUBE_CA_FILE: kube.caFile,
    DRAIN_KUBE_TOKEN_FILE: tokenFile,
    POD_NAMESPACE: 'default',
    POD_NAME: 'web-1',
    POD_UID: 'uid-1',
    POD_IP: '10.0.0.1,fd00:0:0::1',
    DRAIN_SETTLE: '200ms',
    DRAIN_TIMEOUT: '10s',
    ...extra,
  })
  return { kube, env }
}

async function sidecar(t: import('ava').ExecutionContext, env: Record<string, string>) {
  const process = await startSidecar(env)
  t.teardown(() => process.stop())
  return process
}

const hook = (url: string, init?: RequestInit) =>
  fetch(`${url}/prestop`, init).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, any> }))

function dualStackSlices(kube: FakeKube, state: typeof READY | typeof TERMINATING) {
  kube.upsert(endpointSlice({ name: 'web-v4', service: 'web', endpoints: [{ ip: '10.0.0.1', ...me, ...state }, other] }))
  kube.upsert(endpointSlice({ name: 'web-v6', service: 'web', addressType: 'IPv6', endpoints: [{ ip: 'fd00::1', ...me, ...state }] }))
}

test('a dual-stack pod in two Services is released only after it leaves the IPv4 and the IPv6 slice of both', async (t) => {
  const { kube, env } = await cluster(t)
  const envoy = await startFakeEnvoy()
  const app = await startFakeApp()
  t.teardown(() => Promise.all([envoy.close(), app.close()]))
  dualStackSlices(kube, READY)
  // The admin Service matches the pod only by address (no targetRef), spelled differently from POD_IP.
  kube.upsert(endpointSlice({ name: 'admin-v6', service: 'admin', addressType: 'IPv6', endpoints: [{ ip: 'fd00::1' }] }))
  const s = await sidecar(t, env({ DRAIN_ENVOY_ADMIN_URL: envoy.url, DRAIN_APP_SHUTDOWN_URL: app.shutdownUrl }))

  let answered = false
  const answer = hook(s.url, { headers: { 'user-agent': 'kube-lifecycle/1.33' } }).finally(() => (answered = true))
  await kube.untilWatching()
  t.is((await fetch(`${s.url}/ready`)).status, 503, '/ready flips at once')
  // The side calls travel on connections of their own: wait for their answers before looking at the fakes.
  await s.waitForLog('phase_finished', { phase: 'envoy' })
  await s.waitForLog('phase_finished', { phase: 'app' })
  t.true(envoy.drainingInbound, 'Envoy was asked to drain inbound listeners gracefully')
  t.deepEqual(
    app.calls.map((c) => `${c.method} ${c.path}`),
    ['POST /shutdown'],
  )
  t.regex(app.calls[0]!.userAgent ?? '', /^drain-coordinator\/\d+\.\d+\.\d+$/)

  dualStackSlices(kube, TERMINATING)
  await s.waitForLog('endpoint_changed', { slice: 'web-v6', to: 'not-ready' })
  // Longer than DRAIN_SETTLE (200ms): a wait that had wrongly ended here would have answered by now.
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.false(answered, 'the admin Service still routes to the pod')
  t.false(s.logs.some((l) => l.event === 'phase_finished' && l.phase === 'endpoints'))
  kube.remove('admin-v6')
  const { status, body } = await answer
  t.is(status, 200)
  t.is(body.outcome, 'completed')
  t.is(body.phases.endpoints.slicesAtStart, 3)
  t.deepEqual([body.phases.app.status, body.phases.envoy.status], ['ok', 'ok'])
  t.true(body.phases.settle.durationSeconds >= 0.2)
  t.like(await s.waitForLog('drain_started'), { by: 'hook', userAgent: 'kube-lifecycle/1.33' })
})

test('an endpoint with no ready condition holds the hook until it goes, then the settle applies', async (t) => {
  const { kube, env } = await cluster(t)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...me }, other] }))
  const s = await sidecar(t, env())
  let answered = false
  const answer = hook(s.url).finally(() => (answered = true))
  await kube.untilWatching()
  await s.waitForLog('endpoints_listed')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.false(answered, 'held while the endpoint, ready by default, is in the slice')
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [other] }))
  const { body } = await answer
  t.is(body.outcome, 'completed')
  t.is(body.phases.endpoints.status, 'ok')
})

test('a pod in no slice is released after the settle alone', async (t) => {
  const { kube, env } = await cluster(t)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [other] }))
  const s = await sidecar(t, env())
  const { body } = await hook(s.url)
  t.is(body.outcome, 'completed')
  t.is(body.phases.endpoints.slicesAtStart, 0)
  t.is(kube.countRequests('watch'), 0, 'nothing to watch')
})

test('at DRAIN_TIMEOUT concurrent hooks are all answered with outcome "timeout"', async (t) => {
  const { kube, env } = await cluster(t)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...me, ...READY }] }))
  const s = await sidecar(t, env({ DRAIN_TIMEOUT: '1500ms' }))
  const started = performance.now()
  const answers = await Promise.all([hook(s.url), hook(s.url), hook(s.url, { method: 'POST' })])
  const elapsed = performance.now() - started
  for (const { status, body } of answers) {
    t.is(status, 200)
    t.is(body.outcome, 'timeout')
  }
  t.deepEqual(answers[1]!.body, answers[0]!.body, 'one drain, one summary')
  t.true(elapsed >= 1_400 && elapsed < 6_000, `answered after ${Math.round(elapsed)} ms`)
  t.is(s.logs.filter((l) => l.event === 'drain_started').length, 1)
  const metrics = await (await fetch(`${s.url}/metrics`)).text()
  t.regex(metrics, /drain_coordinator_drains_total\{outcome="timeout"\} 1/)
})

test('SIGTERM before the hook starts the drain; the hook joins it; the process exits 0 after answering', async (t) => {
  const { kube, env } = await cluster(t)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...me, ...READY }] }))
  const s = await sidecar(t, env())
  s.child.kill('SIGTERM')
  await s.waitForLog('drain_started', { by: 'signal' })
  t.is((await fetch(`${s.url}/ready`)).status, 503)
  t.is((await fetch(`${s.url}/healthz`)).status, 200, 'still healthy while draining')
  const answer = hook(s.url)
  await s.waitForLog('drain_joined')
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...me, ...TERMINATING }] }))
  const { body } = await answer
  t.is(body.trigger, 'signal')
  t.is(body.outcome, 'completed')
  t.deepEqual(await s.exited, { code: 0, signal: null })
})

test('stdout gone (EPIPE on every log line) does not end the process: the hook is still held until the endpoint leaves', async (t) => {
  const { kube, env } = await cluster(t)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...me, ...READY }] }))
  const s = await sidecar(t, env())
  // The log reader goes away (a crashed log shipper, a closed pipe): from now on every write to stdout fails.
  s.child.stdout!.destroy()
  let answered = false
  const answer = hook(s.url).finally(() => (answered = true))
  answer.catch(() => {}) // awaited below; a crash must fail the assertions, not leave a rejection unhandled
  await kube.untilWatching()
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.false(answered, 'held while the endpoint is in the slice')
  t.is((await fetch(`${s.url}/healthz`)).status, 200, 'alive after its log lines failed to write')
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...me, ...TERMINATING }] }))
  const { body } = await answer
  t.is(body.outcome, 'completed')
  t.is(body.phases.endpoints.status, 'ok')
  t.is(s.child.exitCode, null, `still running; stderr: ${s.stderr}`)
})

test('an exception nothing catches and a promise rejected unhandled, mid-drain, do not end the process: the hook waits for its evidence', async (t) => {
  const { kube, env } = await cluster(t)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...me, ...READY }] }))
  // Loaded into the sidecar's process before it starts: once a drain has begun, a bug throws from a timer and
  // another leaves a rejected promise unhandled.
  const dir = await mkdtemp(join(tmpdir(), 'dc-bugs-'))
  const bugs = join(dir, 'bugs.mjs')
  await writeFile(
    bugs,
    `process.on('SIGUSR2', () => {
  setTimeout(() => { throw new TypeError('a bug thrown from a timer') }, 0)
  void Promise.reject(new RangeError('a bug left unhandled'))
})
`,
  )
  const s = await startSidecar(env(), { nodeArgs: [...NODE_FLAGS, `--import=${bugs}`] })
  t.teardown(() => s.stop())
  const answer = hook(s.url)
  answer.catch(() => {}) // awaited below; a crash must fail the assertions, not leave a rejection unhandled
  await kube.untilWatching()
  s.child.kill('SIGUSR2')
  const thrown = await s.waitForLog('unexpected_error', { kind: 'uncaughtException' })
  t.like(thrown.error, { name: 'TypeError', message: 'a bug thrown from a timer' })
  const rejected = await s.waitForLog('unexpected_error', { kind: 'unhandledRejection' })
  t.like(rejected.error, { name: 'RangeError', message: 'a bug left unhandled' })
  t.is((await fetch(`${s.url}/healthz`)).status, 200, 'still serving')
  const metrics = await (await fetch(`${s.url}/metrics`)).text()
  t.regex(metrics, /drain_coordinator_unexpected_errors_total\{kind="uncaughtException"\} 1/)
  t.regex(metrics, /drain_coordinator_unexpected_errors_total\{kind="unhandledRejection"\} 1/)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...me, ...TERMINATING }] }))
  const { body } = await answer
  t.is(body.outcome, 'completed')
  t.is(s.child.exitCode, null, `still running; stderr: ${s.stderr}`)
})

test('poll mode lists every DRAIN_POLL_INTERVAL and never watches', async (t) => {
  const { kube, env } = await cluster(t)
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...me, ...READY }] }))
  const s = await sidecar(t, env({ DRAIN_ENDPOINT_MODE: 'poll', DRAIN_POLL_INTERVAL: '100ms' }))
  const answer = hook(s.url)
  await s.waitForLog('endpoints_listed')
  for (const until = performance.now() + 15_000; kube.countRequests('list') < 3;) {
    if (performance.now() > until) throw new Error(`only ${kube.countRequests('list')} LISTs in 15 s of polling every 100ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  kube.upsert(endpointSlice({ name: 'web-aaaaa', endpoints: [{ ip: '10.0.0.1', ...me, ...TERMINATING }] }))
  const { body } = await answer
  t.is(body.outcome, 'completed')
  t.is(body.phases.endpoints.mode, 'poll')
  t.is(kube.countRequests('watch'), 0)
})

test('without an API server the sidecar warns once at start-up and drains on the settle alone', async (t) => {
  const s = await sidecar(t, { DRAIN_SETTLE: '100ms', POD_NAME: 'web-1' })
  await s.waitForLog('endpoint_wait_disabled')
  const { body } = await hook(s.url)
  t.is(body.phases.endpoints.status, 'skipped')
  t.is(s.logs.filter((l) => l.event === 'endpoint_wait_disabled').length, 1, 'warned once, not per drain')
})

test('the API client sends our User-Agent and the bearer token, and the token is not logged', async (t) => {
  const { kube, env } = await cluster(t)
  const s = await sidecar(t, env())
  await hook(s.url)
  t.regex(kube.requests[0]!.userAgent ?? '', /^drain-coordinator\//)
  t.is(kube.requests[0]!.authorization, 'Bearer test-token')
  t.false(JSON.stringify(s.logs).includes('test-token'))
})

test('after a drain, SIGTERM waits for one scrape of the final metrics when Prometheus has been scraping', async (t) => {
  const s = await sidecar(t, { DRAIN_SETTLE: '100ms', DRAIN_FINAL_SCRAPE_WAIT: '20s' })
  await fetch(`${s.url}/metrics`).then((r) => r.text())
  await hook(s.url)
  s.child.kill('SIGTERM')
  await s.waitForLog('signal_received')
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.is(s.child.exitCode, null, 'still up, waiting for the scrape')
  const final = await (await fetch(`${s.url}/metrics`)).text()
  t.regex(final, /drain_coordinator_drains_total\{outcome="completed"\} 1/, 'the last scrape carries the drain')
  t.deepEqual(await s.exited, { code: 0, signal: null })
  t.like(await s.waitForLog('final_scrape'), { result: 'scraped' })
})

test('a sidecar nobody scrapes exits right after the drain', async (t) => {
  const s = await sidecar(t, { DRAIN_SETTLE: '100ms' })
  await hook(s.url)
  s.child.kill('SIGTERM')
  t.deepEqual(await s.exited, { code: 0, signal: null })
  t.like(await s.waitForLog('final_scrape'), { result: 'not-scraped', waitedMs: 0 })
})

test('a port already in use exits non-zero with one line naming DRAIN_PORT', async (t) => {
  const first = await sidecar(t, { DRAIN_SETTLE: '100ms' })
  const error = await t.throwsAsync(
    run(process.execPath, [BUNDLE], { env: { PATH: process.env.PATH ?? '', DRAIN_PORT: String(first.port), DRAIN_HOST: '127.0.0.1' } }),
  )
  const { code, stderr } = error as unknown as { code: number; stderr: string }
  t.is(code, 2)
  t.regex(stderr, /^drain-coordinator: cannot listen on 127\.0\.0\.1:\d+ \(DRAIN_HOST, DRAIN_PORT\): EADDRINUSE\n$/)
})

const badConfigs: Array<[Record<string, string>, RegExp]> = [
  [
    { DRAIN_TIMEOUT: 'abc' },
    /^drain-coordinator: DRAIN_TIMEOUT="abc" is not valid: expected a duration such as 500ms, 5s, 2m, 1m30s, or a number of seconds/,
  ],
  [
    { DRAIN_SETTLE: '30s', DRAIN_TIMEOUT: '20s' },
    /^drain-coordinator: DRAIN_SETTLE="30s" is not valid: expected a duration shorter than DRAIN_TIMEOUT/,
  ],
  [{ DRAIN_PORT: '99999' }, /^drain-coordinator: DRAIN_PORT="99999" is not valid: expected a port number from 1 to 65535/],
  [{ DRAIN_ENVOY_ADMIN_URL: '127.0.0.1:15000' }, /^drain-coordinator: DRAIN_ENVOY_ADMIN_URL="127.0.0.1:15000" is not valid/],
  [
    { DRAIN_KUBE_API_URL: 'https://127.0.0.1:6443', DRAIN_KUBE_CA_FILE: '/nonexistent/ca.crt', POD_NAMESPACE: 'default', POD_NAME: 'x' },
    /^drain-coordinator: DRAIN_KUBE_CA_FILE="\/nonexistent\/ca.crt" cannot be used \(ENOENT/,
  ],
]

for (const [env, message] of badConfigs) {
  test(`bad configuration ${JSON.stringify(env)} exits non-zero with one line on stderr`, async (t) => {
    const error = await t.throwsAsync(run(process.execPath, [BUNDLE], { env: { PATH: process.env.PATH ?? '', ...env } }))
    const { code, stderr, stdout } = error as unknown as { code: number; stderr: string; stdout: string }
    t.is(code, 2)
    t.regex(stderr, message)
    t.is(stderr.trim().split('\n').length, 1)
    t.is(stdout, '')
  })
}
