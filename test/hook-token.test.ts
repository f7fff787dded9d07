/**
 * DRAIN_HOOK_TOKEN / DRAIN_HOOK_TOKEN_FILE: a /prestop without the exact X-Drain-Token gets 401 and starts
 * nothing (the pod stays in service), fails closed when the token file was never read (a later failed read keeps
 * the last token), never echoes the token,
 * and SIGTERM still drains. Unit tests through the Hono app, one black-box run of the bundle.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import fc from 'fast-check'
import { parseConfig } from '../src/config.ts'
import { ConfigError } from '../src/errors.ts'
import { tokensMatch } from '../src/hook-auth.ts'
import { createFileTokenSource } from '../src/kube/token.ts'
import { createServerApp } from '../src/server.ts'
import { testCoordinator } from './helpers/coordinator.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { startSidecar } from '../sim/fakes/sidecar-process.ts'

const TOKEN = 's3cret-hook-token-0123'

function harness(token: () => Promise<string | undefined>) {
  const { coordinator, log, registry, metrics } = testCoordinator()
  const app = createServerApp({
    coordinator,
    readiness: async () => ({ ready: coordinator.state === 'serving', reason: 'x' }),
    metrics,
    log,
    hookToken: token,
  })
  return { app, coordinator, log, registry }
}

test('any X-Drain-Token other than the exact token is refused with 401 and starts nothing; the exact one drains', async (t) => {
  const h = harness(async () => TOKEN)
  const near = fc.oneof(
    fc.string(),
    fc.constantFrom(TOKEN.toUpperCase(), `${TOKEN} `, ` ${TOKEN}`, TOKEN.slice(0, -1), `${TOKEN}x`, `Bearer ${TOKEN}`, ''),
    fc.string({ minLength: 1, maxLength: 4 }).map((s) => TOKEN.slice(0, 5) + s + TOKEN.slice(5)),
  )
  let refused = 0
  await fc.assert(
    fc.asyncProperty(near, async (presented) => {
      fc.pre(presented !== TOKEN)
      // A header value cannot carry every string; what fetch refuses to send is not a test of the server.
      let headers: Headers
      try {
        headers = new Headers({ 'x-drain-token': presented })
      } catch {
        return
      }
      fc.pre(headers.get('x-drain-token') !== TOKEN)
      const response = await h.app.request('/prestop', { headers })
      refused++
      return response.status === 401 && h.coordinator.state === 'serving'
    }),
    { numRuns: 150 },
  )
  t.true(refused > 50)
  t.is(h.coordinator.state, 'serving')
  const ok = await h.app.request('/prestop', { headers: { 'x-drain-token': TOKEN } })
  t.is(ok.status, 200)
  t.is(h.coordinator.state, 'drained')
})

test('a 401 says which header is needed, logs hook_rejected, counts unauthorized, and never echoes any token', async (t) => {
  const h = harness(async () => TOKEN)
  const response = await h.app.request('/prestop', {
    headers: { 'x-drain-token': 'wrong-but-secretish', 'user-agent': 'kube-lifecycle/1.33' },
  })
  t.is(response.status, 401)
  const body = await response.text()
  t.regex(body, /X-Drain-Token|x-drain-token/)
  t.false(body.includes(TOKEN) || body.includes('wrong-but-secretish'))
  const rejected = h.log.lines.filter((l) => l.event === 'hook_rejected')
  t.is(rejected.length, 1)
  t.like(rejected[0], { level: 'warn', userAgent: 'kube-lifecycle/1.33' })
  t.false(JSON.stringify(h.log.lines).includes(TOKEN))
  t.false(JSON.stringify(h.log.lines).includes('wrong-but-secretish'))
  const metrics = await h.registry.metrics()
  t.regex(metrics, /drain_coordinator_hook_requests_total\{result="unauthorized"\} 1/)
  t.regex(metrics, /drain_coordinator_drains_total\{outcome="completed"\} 0/)
})

test('an unreadable token file fails closed: every hook is refused, with a reason saying so', async (t) => {
  const h = harness(async () => undefined)
  const response = await h.app.request('/prestop', { headers: { 'x-drain-token': TOKEN } })
  t.is(response.status, 401)
  t.is(h.coordinator.state, 'serving')
  t.like(
    h.log.lines.find((l) => l.event === 'hook_rejected'),
    { reason: 'hook token file unreadable' },
  )
})

test('the token file as the sidecar reads it: every call re-reads it, a failed read keeps the last token, only a file never read gives none', async (t) => {
  const clock = new FakeClock()
  const reads: Array<string | Error> = [new Error('EACCES'), TOKEN, new Error('EMFILE: too many open files'), 'rotated-token-456789']
  const errors: unknown[] = []
  const source = createFileTokenSource('/var/run/secrets/hook/token', {
    clock,
    readFile: async () => {
      const next = reads.shift()!
      if (next instanceof Error) throw next
      return `${next}\n`
    },
    onError: (error) => errors.push(error),
    maxAgeMs: 0,
  })
  t.is(await source.get(), undefined, 'never read: fails closed')
  t.is(await source.get(), TOKEN)
  t.is(await source.get(), TOKEN, "a momentary read failure keeps the token, so kubelet's hook is not refused")
  t.is(await source.get(), 'rotated-token-456789', 'no clock advance needed: a rotation counts at the next call')
  t.is(errors.length, 2)
})

test('tokensMatch is exactly string equality', (t) => {
  fc.assert(fc.property(fc.string(), fc.string(), (a, b) => tokensMatch(a, b) === (a === b)))
  fc.assert(fc.property(fc.string(), (a) => tokensMatch(a, a) && !tokensMatch(a, undefined)))
  t.pass()
})

test('configuration: a token too short or with spaces is refused without echoing it; value and file together are refused', (t) => {
  for (const bad of ['short', 'has a space in it', 'tab\there-and-long']) {
    const error = t.throws(() => parseConfig({ DRAIN_HOOK_TOKEN: bad }), { instanceOf: ConfigError })
    t.false(error!.message.includes(bad))
  }
  t.throws(() => parseConfig({ DRAIN_HOOK_TOKEN: TOKEN, DRAIN_HOOK_TOKEN_FILE: '/etc/token' }), {
    instanceOf: ConfigError,
    message: /DRAIN_HOOK_TOKEN_FILE/,
  })
  t.deepEqual(parseConfig({ DRAIN_HOOK_TOKEN: TOKEN }).hookToken, { value: TOKEN })
  t.is(parseConfig({ DRAIN_HOOK_TOKEN: '' }).hookToken, undefined)
})

test('black box: a token file that turns unreadable after it was read keeps its token, so the right hook is still served', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dc-hook-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'token')
  await writeFile(file, `${TOKEN}\n`)
  const sidecar = await startSidecar({ DRAIN_HOOK_TOKEN_FILE: file, DRAIN_SETTLE: '200ms', DRAIN_TIMEOUT: '10s' })
  t.teardown(() => sidecar.stop())
  // The file is read (a stray call, refused), then cannot be read any more: a directory in its place (EISDIR).
  t.is((await fetch(`${sidecar.url}/prestop`, { method: 'POST' })).status, 401)
  await rm(file)
  await mkdir(file)
  const answer = await fetch(`${sidecar.url}/prestop`, { headers: { 'x-drain-token': TOKEN } })
  t.is(answer.status, 200)
  t.like(await answer.json(), { outcome: 'completed' })
  t.truthy(sidecar.logs.find((l) => l.event === 'hook_token_unreadable'))
})

test('black box: with DRAIN_HOOK_TOKEN_FILE a stray /prestop leaves the pod in service, a rotated file is honoured, and SIGTERM still drains', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dc-hook-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'token')
  await writeFile(file, `${TOKEN}\n`)
  const sidecar = await startSidecar({ DRAIN_HOOK_TOKEN_FILE: file, DRAIN_SETTLE: '300ms', DRAIN_TIMEOUT: '10s' })
  t.teardown(() => sidecar.stop())
  t.like(sidecar.logs.find((l) => l.event === 'started')?.config, { hookToken: `file ${file}` })

  const stray = await fetch(`${sidecar.url}/prestop`, { method: 'POST' })
  t.is(stray.status, 401)
  t.is((await fetch(`${sidecar.url}/ready`)).status, 200, 'still in service')
  await writeFile(file, 'rotated-token-456789\n')
  t.is((await fetch(`${sidecar.url}/prestop`, { headers: { 'x-drain-token': TOKEN } })).status, 401, 'the old token no longer works')
  t.is((await fetch(`${sidecar.url}/ready`)).status, 200)
  const metrics = await (await fetch(`${sidecar.url}/metrics`)).text()
  t.regex(metrics, /drain_coordinator_hook_requests_total\{result="unauthorized"\} 2/)
  t.regex(metrics, /drain_coordinator_drains_total\{outcome="completed"\} 0/)

  sidecar.child.kill('SIGTERM')
  await sidecar.waitForLog('drain_started')
  const joined = await fetch(`${sidecar.url}/prestop`, { headers: { 'x-drain-token': 'rotated-token-456789' } })
  t.is(joined.status, 200)
  t.like(await joined.json(), { trigger: 'signal', outcome: 'completed' })
  // This sidecar has been scraped, so its exit waits for a scrape of the final metrics: give it one, as Prometheus would.
  t.regex(await (await fetch(`${sidecar.url}/metrics`)).text(), /drain_coordinator_drains_total\{outcome="completed"\} 1/)
  t.is((await sidecar.exited).code, 0)
  t.like(
    sidecar.logs.find((l) => l.event === 'final_scrape'),
    { result: 'scraped' },
  )
  t.is(sidecar.logs.filter((l) => l.event === 'hook_rejected').length, 2)
  const allLogs = JSON.stringify(sidecar.logs)
  t.false(allLogs.includes(TOKEN) || allLogs.includes('rotated-token-456789'))
})
