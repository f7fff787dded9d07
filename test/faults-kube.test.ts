/**
 * The Kubernetes API fault matrix, against the real client (HTTPS, undici) and endpoint wait talking to the fake
 * API server: each test injects one fault and checks a promise (the wait keeps going and uses the API again once
 * it recovers, the caller's deadline always ends it, nothing is trusted that should not be).
 */
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { systemClock } from '../src/clock.ts'
import type { PodIdentity } from '../src/config.ts'
import { UpstreamError } from '../src/errors.ts'
import { createKubeClient, type KubeClient } from '../src/kube/client.ts'
import { waitForEndpointRemoval } from '../src/kube/endpoint-wait.ts'
import { createFileTokenSource, staticToken, type TokenSource } from '../src/kube/token.ts'
import { createLogger, type Logger } from '../src/log.ts'
import { createFetch } from '../src/transport.ts'
import { CLUSTER_CA_FILE, startFakeKube, type FakeKube } from './helpers/fake-kube.ts'
import { endpointSlice, READY, TERMINATING } from './helpers/fixtures.ts'

const NS = 'shop'
const POD: PodIdentity = { name: 'web-1', namespace: NS, uid: 'uid-web-1', ips: ['10.0.0.7'] }
const CA = readFileSync(CLUSTER_CA_FILE, 'utf8')

const holding = (name = 'web-abcde', conditions: object = READY) =>
  endpointSlice({ name, service: 'web', namespace: NS, endpoints: [{ ip: '10.0.0.7', podName: 'web-1', uid: 'uid-web-1', ...conditions }, { ip: '10.0.0.8', podName: 'web-2', ...READY }] })

function capture() {
  const lines: Array<Record<string, unknown>> = []
  const log: Logger = createLogger((line) => lines.push(JSON.parse(line) as Record<string, unknown>))
  return { log, lines, events: () => lines.map((l) => l.event as string) }
}

async function setup(t: { teardown: (fn: () => unknown) => void }, options: Parameters<typeof startFakeKube>[0] & { token?: TokenSource; requestTimeoutMs?: number; pageSize?: number } = {}) {
  const kube = await startFakeKube({ namespace: NS, ...options })
  const fetch = createFetch({ ca: CA, connectTimeoutMs: 2_000 })
  const client = createKubeClient({
    apiUrl: kube.url,
    namespace: NS,
    fetch,
    token: options.token ?? staticToken('test-token'),
    clock: systemClock,
    userAgent: 'faults-test',
    requestTimeoutMs: options.requestTimeoutMs ?? 2_000,
    ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
  })
  t.teardown(async () => {
    await kube.close()
    await fetch.close()
  })
  return { kube, client, fetch }
}

function wait(client: KubeClient, log: Logger, signal: AbortSignal, mode: 'watch' | 'poll' = 'watch') {
  return waitForEndpointRemoval({ kube: client, clock: systemClock, log, pod: POD, mode, pollIntervalMs: 100, random: () => 0 }, signal)
}

async function until(predicate: () => boolean, what: string, timeoutMs = 10_000) {
  const end = performance.now() + timeoutMs
  while (!predicate()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

test('aborting the caller signal ends an open watch at once and closes its connection', async (t) => {
  const { kube, client } = await setup(t)
  kube.upsert(holding())
  const controller = new AbortController()
  const events: string[] = []
  const consumed = (async () => {
    for await (const event of client.watchEndpointSlices({ resourceVersion: String(kube.resourceVersion) }, controller.signal)) events.push(event.type)
  })()
  await kube.untilWatching(1)
  const reason = new Error('drain deadline')
  const abortedAt = performance.now()
  controller.abort(reason)
  const error = await t.throwsAsync(consumed)
  t.is(error, reason)
  t.true(performance.now() - abortedAt < 5_000)
  await until(() => kube.watcherCount === 0, 'the watch connection to close')
  t.deepEqual(events, [])
})
