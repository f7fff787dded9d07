/**
 * Files the sidecar reads while it runs: every read bounded (token files 16 KiB, the CA bundle 1 MiB), the
 * bearer token kept when a re-read fails, and the CA bundle re-read when it changes, so a rotated cluster CA
 * does not turn every drain into a timeout. Unit tests, then the bundle against the fake API server.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import test, { type ExecutionContext } from 'ava'
import { CA_CHECK_INTERVAL_MS, countCaCertificates, createCaBundleWatcher } from '../src/ca-bundle.ts'
import { FILE_LIMITS, FileTooLargeError, readBoundedFile } from '../src/files.ts'
import { createFileTokenSource, TOKEN_MAX_AGE_MS } from '../src/kube/token.ts'
import { captureLog } from './helpers/capture-log.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { CLUSTER_CA_FILE, ROTATED_CA_FILE, startFakeKube } from '../sim/fakes/fake-kube.ts'
import { endpointSlice, READY, TERMINATING } from '../sim/fakes/fixtures.ts'
import { BUNDLE, startSidecar } from '../sim/fakes/sidecar-process.ts'

const run = promisify(execFile)
const CLUSTER_CA = await readFile(CLUSTER_CA_FILE, 'utf8')
const ROTATED_CA = await readFile(ROTATED_CA_FILE, 'utf8')

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dc-files-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** As kubelet updates a projected volume: a new file renamed over the old one. */
async function replaceFile(path: string, content: string | Uint8Array): Promise<void> {
  await writeFile(`${path}.new`, content)
  await rename(`${path}.new`, path)
}

test('readBoundedFile reads a file up to the limit and refuses a larger one, naming the file, its size and the limit', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'token')
  await writeFile(file, 'x'.repeat(100))
  t.is(await readBoundedFile(file, 100, 'bearer token file'), 'x'.repeat(100))
  await writeFile(file, 'x'.repeat(101))
  const error = await t.throwsAsync(readBoundedFile(file, 100, 'bearer token file'), { instanceOf: FileTooLargeError })
  t.is(error!.message, `bearer token file ${file} is 101 bytes, over the limit of 100 bytes`)
  t.like(error, { code: 'FILE_TOO_LARGE', bytes: 101, limitBytes: 100 })
})

test('readBoundedFile stops one byte past the limit on a file whose size stat cannot tell (/dev/zero)', async (t) => {
  const error = await t.throwsAsync(readBoundedFile('/dev/zero', 4096, 'CA bundle'), { instanceOf: FileTooLargeError })
  t.like(error, { bytes: 4097, limitBytes: 4096 })
})

test('the limits: 16 KiB for a token file, 1 MiB for a CA bundle', (t) => {
  t.deepEqual({ ...FILE_LIMITS }, { token: 16 * 1024, caBundle: 1024 * 1024 })
})

test('countCaCertificates counts the certificates of a PEM bundle and refuses one without any, or with one broken', (t) => {
  t.is(countCaCertificates(CLUSTER_CA), 1)
  t.is(countCaCertificates(CLUSTER_CA + ROTATED_CA), 2)
  t.throws(() => countCaCertificates('not a certificate\n'), { message: /no PEM certificate/ })
  const broken = CLUSTER_CA.replace(/\n[A-Za-z0-9+/]{20}/, '\nAAAAAAAAAAAAAAAAAAAA')
  t.throws(() => countCaCertificates(ROTATED_CA + broken), { message: /certificate 2 of 2 does not parse/ })
})

function caHarness(initialFile: string) {
  const clock = new FakeClock()
  const log = captureLog()
  const files = new Map<string, string | Error>([['/ca.crt', initialFile]])
  const applied: string[] = []
  const watcher = createCaBundleWatcher({
    file: '/ca.crt',
    initial: CLUSTER_CA,
    read: async (path) => {
      const content = files.get(path)!
      if (content instanceof Error) throw content
      return content
    },
    apply: (pem) => applied.push(pem),
    clock,
    log,
  })
  const set = (content: string | Error) => files.set('/ca.crt', content)
  return { clock, log, watcher, applied, set }
}

test('the CA bundle is re-read every 10 s and applied when it changed', async (t) => {
  const h = caHarness(CLUSTER_CA)
  const stop = new AbortController()
  void h.watcher.run(stop.signal)
  await h.clock.advance(CA_CHECK_INTERVAL_MS)
  t.deepEqual(h.applied, [], 'unchanged: the transport is left alone')
  h.set(CLUSTER_CA + ROTATED_CA)
  await h.clock.advance(CA_CHECK_INTERVAL_MS - 1)
  t.deepEqual(h.applied, [])
  await h.clock.advance(1)
  t.deepEqual(h.applied, [CLUSTER_CA + ROTATED_CA])
  t.like(
    h.log.lines.find((l) => l.event === 'kube_ca_reloaded'),
    { file: '/ca.crt', reason: 'interval', certificates: 2 },
  )
  stop.abort()
})

test('a CA bundle that becomes unreadable, too large or invalid keeps the previous CA, logged once per problem', async (t) => {
  const h = caHarness(CLUSTER_CA)
  const missing = Object.assign(new Error("ENOENT: no such file or directory, open '/ca.crt'"), { code: 'ENOENT' })
  for (const problem of [
    missing,
    missing,
    new FileTooLargeError('/ca.crt', 5_000_000, FILE_LIMITS.caBundle, 'CA bundle'),
    'garbage\n',
    'garbage\n',
  ]) {
    h.set(problem)
    t.false(await h.watcher.check('interval'))
  }
  t.deepEqual(h.applied, [])
  const unusable = h.log.lines.filter((l) => l.event === 'kube_ca_unusable')
  t.deepEqual(
    unusable.map((l) => (l.error as { message: string }).message),
    [
      missing.message,
      'CA bundle /ca.crt is 5000000 bytes, over the limit of 1048576 bytes',
      'no PEM certificate (-----BEGIN CERTIFICATE-----) in it',
    ],
  )
  t.true(unusable.every((l) => l.level === 'warn' && l.keeping === 'the previous CA bundle'))
  h.set(ROTATED_CA)
  t.true(await h.watcher.check('interval'))
  t.deepEqual(h.applied, [ROTATED_CA])
})

test('after a certificate error the bundle is re-read at once, but at most once a second', async (t) => {
  const h = caHarness(ROTATED_CA)
  t.true(await h.watcher.check('certificate-error'))
  h.set(CLUSTER_CA)
  t.false(await h.watcher.check('certificate-error'), 'within a second of the last read: not read again')
  await h.clock.advance(1_000)
  t.true(await h.watcher.check('certificate-error'))
  t.deepEqual(h.applied, [ROTATED_CA, CLUSTER_CA])
})

test('a bearer token re-read that fails keeps the last token instead of going unauthenticated', async (t) => {
  const clock = new FakeClock()
  let content: string | Error = 'first-token\n'
  const errors: unknown[] = []
  const tokens = createFileTokenSource('/token', {
    clock,
    readFile: async () => {
      if (content instanceof Error) throw content
      return content
    },
    onError: (error) => errors.push(error),
  })
  t.is(await tokens.get(), 'first-token')
  content = new FileTooLargeError('/token', 1 << 20, FILE_LIMITS.token, 'bearer token file')
  await clock.advance(TOKEN_MAX_AGE_MS)
  t.is(await tokens.get(), 'first-token')
  tokens.invalidate()
  t.is(await tokens.get(), 'first-token')
  t.is(errors.length, 2)
  content = 'second-token\n'
  tokens.invalidate()
  t.is(await tokens.get(), 'second-token')
})

// ---- The bundle as a process ----

const me = { ip: '10.0.0.1', podName: 'web-1', uid: 'uid-1' }
const mySlice = (state: typeof READY | typeof TERMINATING) =>
  endpointSlice({ name: 'web-a', service: 'web', endpoints: [{ ...me, ...state }] })

async function withKube(t: ExecutionContext, { token = 'test-token\n', ca = CLUSTER_CA }: { token?: string; ca?: string } = {}) {
  const kube = await startFakeKube()
  t.teardown(() => kube.close())
  const dir = await tempDir(t)
  const files = { token: join(dir, 'token'), ca: join(dir, 'ca.crt') }
  await writeFile(files.token, token)
  await writeFile(files.ca, ca)
  kube.upsert(mySlice(READY))
  const env = {
    DRAIN_KUBE_API_URL: kube.url,
    DRAIN_KUBE_CA_FILE: files.ca,
    DRAIN_KUBE_TOKEN_FILE: files.token,
    POD_NAMESPACE: 'default',
    POD_NAME: me.podName,
    POD_UID: me.uid,
    POD_IP: me.ip,
    DRAIN_SETTLE: '200ms',
  }
  return { kube, files, env }
}

test('black box: the cluster CA rotates mid-run (a bad bundle first, then the new CA); the drain still completes', async (t) => {
  const { kube, files, env } = await withKube(t)
  const sidecar = await startSidecar({ ...env, DRAIN_TIMEOUT: '20s' })
  t.teardown(() => sidecar.stop())
  await sidecar.waitForLog('kube_access_ok')

  // The API server restarts with a certificate from the new CA while the mounted bundle is still being rewritten.
  await replaceFile(files.ca, 'garbage, not PEM\n')
  kube.useCertificate('rotated')
  const answer = fetch(`${sidecar.url}/prestop`).then(async (r) => (await r.json()) as Record<string, unknown>)
  t.like(await sidecar.waitForLog('kube_ca_unusable'), {
    file: files.ca,
    reason: 'certificate-error',
    keeping: 'the previous CA bundle',
    error: { code: 'CA_BUNDLE_INVALID' },
  })
  await replaceFile(files.ca, ROTATED_CA)
  t.like(await sidecar.waitForLog('kube_ca_reloaded'), { file: files.ca, certificates: 1 })
  await sidecar.waitForLog('endpoints_listed')
  kube.upsert(mySlice(TERMINATING))
  t.like(await answer, { outcome: 'completed' })
})

test('black box: a bearer token file over 16 KiB gets one line naming the file, its size and the limit, and is never sent', async (t) => {
  const { kube, files, env } = await withKube(t, { token: 'x'.repeat(1024 * 1024) })
  const sidecar = await startSidecar({ ...env, DRAIN_TIMEOUT: '10s' })
  t.teardown(() => sidecar.stop())
  const line = await sidecar.waitForLog('kube_token_unreadable')
  t.like(line, { level: 'warn', file: files.token, bytes: 1024 * 1024, limitBytes: 16 * 1024, error: { code: 'FILE_TOO_LARGE' } })
  // The access check's request arrives without a token, rather than with a megabyte of header: an anonymous
  // request, which the API server (and so the fake) refuses with 403.
  await sidecar.waitForLog('kube_access_denied')
  t.true(kube.requests.length > 0)
  t.true(kube.requests.every((r) => r.authorization === undefined))
})

test('black box: a hook token file over 16 KiB fails closed with one line naming the file, its size and the limit', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'hook-token')
  await writeFile(file, 'y'.repeat(100_000))
  const sidecar = await startSidecar({ DRAIN_HOOK_TOKEN_FILE: file, DRAIN_SETTLE: '200ms', DRAIN_TIMEOUT: '10s' })
  t.teardown(() => sidecar.stop())
  t.is((await fetch(`${sidecar.url}/prestop`, { headers: { 'x-drain-token': 'y'.repeat(100) } })).status, 401)
  t.like(await sidecar.waitForLog('hook_token_unreadable'), { file, bytes: 100_000, limitBytes: 16 * 1024 })
  t.is((await fetch(`${sidecar.url}/ready`)).status, 200)
})

test('black box: a CA file over 1 MiB at start-up exits 2 with one line naming the file, its size and the limit', async (t) => {
  const { files, env } = await withKube(t, { ca: CLUSTER_CA + '#'.repeat(2 * 1024 * 1024) })
  const error = await t.throwsAsync(run(process.execPath, [BUNDLE], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 15_000 }))
  const { code, stderr } = error as unknown as { code: number; stderr: string }
  t.is(code, 2)
  t.is(stderr.trim().split('\n').length, 1)
  t.regex(
    stderr,
    new RegExp(
      `^drain-coordinator: DRAIN_KUBE_CA_FILE="${files.ca}" cannot be used \\(CA bundle ${files.ca} is ${CLUSTER_CA.length + 2 * 1024 * 1024} bytes, over the limit of 1048576 bytes\\)`,
    ),
  )
})
