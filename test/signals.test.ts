/**
 * Signals: the sequencing with a fake clock and a plain emitter, then the bundle as a process receiving real
 * signals. No signal may cut a drain short or end the process while a hook is held.
 */
import { EventEmitter } from 'node:events'
import { execFileSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test, { type ExecutionContext } from 'ava'
import { installSignalHandlers } from '../src/signals.ts'
import { testCoordinator } from './helpers/coordinator.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { startHeldDrain } from '../sim/fakes/held-hooks.ts'
import { type Sidecar, startSidecar } from '../sim/fakes/sidecar-process.ts'

function harness({ finalScrape = async () => {} }: { finalScrape?: (cut: AbortSignal) => Promise<void> } = {}) {
  const clock = new FakeClock()
  const { coordinator, log } = testCoordinator({ clock, config: { settleMs: 2_000, timeoutMs: 10_000 } })
  const emitter = new EventEmitter()
  const exits: number[] = []
  const order: string[] = []
  installSignalHandlers(emitter, {
    coordinator,
    log,
    beforeExit: async (cut) => {
      order.push('final scrape')
      await finalScrape(cut)
    },
    closeServer: async () => {
      order.push('close server')
    },
    exit: (code) => exits.push(code),
  })
  const received = () => log.lines.filter((l) => l.event === 'signal_received')
  return { clock, log, coordinator, emitter, exits, order, received }
}

test('SIGTERM starts a drain and exits 0 only once it is done and the server has closed', async (t) => {
  const h = harness()
  h.emitter.emit('SIGTERM')
  t.is(h.coordinator.state, 'draining')
  await h.clock.advance(1_999)
  t.deepEqual(h.exits, [], 'keeps serving during the drain')
  await h.clock.advance(1)
  t.deepEqual(h.order, ['final scrape', 'close server'], 'the final scrape is waited for before the server closes')
  t.deepEqual(h.exits, [0])
  t.is(h.coordinator.summary?.trigger, 'signal')
  t.like(h.received()[0], { signal: 'SIGTERM', action: 'drain', state: 'serving' })
})

test('SIGTERM during a hook-started drain joins it', async (t) => {
  const h = harness()
  const hook = h.coordinator.start('hook')
  await h.clock.advance(500)
  h.emitter.emit('SIGTERM')
  await h.clock.advance(1_500)
  t.is((await hook).trigger, 'hook')
  t.deepEqual(h.exits, [0])
  t.is(h.log.events().filter((e) => e === 'drain_started').length, 1)
})

for (const signal of ['SIGINT', 'SIGQUIT']) {
  test(`${signal} works like SIGTERM`, async (t) => {
    const h = harness()
    h.emitter.emit(signal)
    t.is(h.coordinator.state, 'draining')
    await h.clock.advance(2_000)
    t.deepEqual(h.exits, [0])
  })
}

test('repeated SIGTERM, SIGINT and SIGQUIT during a drain are logged and absorbed: the drain runs to its end', async (t) => {
  const h = harness()
  const hook = h.coordinator.start('hook')
  h.emitter.emit('SIGTERM')
  await h.clock.advance(100)
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGTERM']) h.emitter.emit(signal)
  await h.clock.advance(1_899)
  t.deepEqual(h.exits, [], 'still draining')
  t.is(h.coordinator.state, 'draining')
  await h.clock.advance(1)
  t.is((await hook).outcome, 'completed')
  t.deepEqual(h.exits, [0])
  const absorbed = h.received().filter((l) => l.action === 'absorbed')
  t.deepEqual(
    absorbed.map((l) => l.signal),
    ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGTERM'],
  )
  t.true(absorbed.every((l) => l.level === 'warn' && l.first === 'SIGTERM' && l.state === 'draining'))
})

test('a repeated signal during the final-scrape wait cuts only that wait short; the server still closes, exit 0', async (t) => {
  const h = harness({ finalScrape: (cut) => new Promise((resolve) => cut.addEventListener('abort', () => resolve())) })
  h.emitter.emit('SIGTERM')
  await h.clock.advance(2_000)
  t.deepEqual(h.order, ['final scrape'])
  t.deepEqual(h.exits, [], 'waiting for the scrape')
  h.emitter.emit('SIGINT')
  await h.clock.settle()
  t.deepEqual(h.order, ['final scrape', 'close server'])
  t.deepEqual(h.exits, [0])
  t.like(h.received().at(-1), { signal: 'SIGINT', action: 'final-scrape-wait-cut-short', first: 'SIGTERM', state: 'drained' })
})

test('SIGHUP, SIGUSR1 and SIGUSR2 are logged and ignored: no drain, no exit', async (t) => {
  const h = harness()
  for (const signal of ['SIGHUP', 'SIGUSR1', 'SIGUSR2']) h.emitter.emit(signal)
  await h.clock.advance(5_000)
  t.is(h.coordinator.state, 'serving')
  t.deepEqual(h.exits, [])
  t.deepEqual(
    h.received().map((l) => [l.signal, l.action]),
    [
      ['SIGHUP', 'ignored'],
      ['SIGUSR1', 'ignored'],
      ['SIGUSR2', 'ignored'],
    ],
  )
})

test('SIGTERM after the drain finished exits at once with 0', async (t) => {
  const h = harness()
  const hook = h.coordinator.start('hook')
  await h.clock.advance(2_000)
  await hook
  h.emitter.emit('SIGTERM')
  await h.clock.settle()
  t.deepEqual(h.exits, [0])
})

// ---- The bundle as a process, real signals ----

/** A sidecar whose drain holds until the test takes the pod's endpoint out of its slice. */
async function heldDrain(t: ExecutionContext) {
  const run = await startHeldDrain()
  t.teardown(() => run.close())
  return run
}

const hookAnswer = (sidecar: Sidecar) =>
  fetch(`${sidecar.url}/prestop`).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }))

/** Waits until the sidecar has logged `count` signal_received lines matching `match`. */
const untilSignals = (sidecar: Sidecar, count: number, match: Record<string, unknown>) =>
  sidecar.waitForLogs('signal_received', match, count)

/** Sends each signal once the previous one has been logged: a signal sent while the same one is pending is merged. */
async function sendEach(sidecar: Sidecar, signals: NodeJS.Signals[], match: Record<string, unknown>): Promise<void> {
  const before = sidecar.logs.filter((l) => l.event === 'signal_received' && Object.entries(match).every(([k, v]) => l[k] === v)).length
  for (const [i, signal] of signals.entries()) {
    sidecar.child.kill(signal)
    await untilSignals(sidecar, before + i + 1, match)
  }
  const logged = await sidecar.waitForLogs('signal_received', match, before + signals.length)
  if (
    logged
      .slice(before)
      .map((l) => l.signal)
      .join() !== signals.join()
  )
    throw new Error(`logged ${logged.map((l) => l.signal).join()}`)
}

/** The TCP ports the process itself listens on, from /proc: an inspector would add 9229 (or any port). */
async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>()
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const match = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''))
    if (match) inodes.add(match[1]!)
  }
  const ports: number[] = []
  for (const table of ['tcp', 'tcp6']) {
    const rows = (await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '')).trim().split('\n').slice(1)
    for (const row of rows) {
      const cols = row.trim().split(/\s+/)
      // st 0A is LISTEN; column 9 is the socket's inode.
      if (cols[3] === '0A' && inodes.has(cols[9]!)) ports.push(Number.parseInt(cols[1]!.split(':').at(-1)!, 16))
    }
  }
  return ports.sort((a, b) => a - b)
}

async function stillServing(t: ExecutionContext, sidecar: Sidecar) {
  t.is(sidecar.child.exitCode, null, 'the process is alive')
  t.is((await fetch(`${sidecar.url}/healthz`)).status, 200, 'and answering')
  t.deepEqual(await listeningPorts(sidecar.child.pid!), [sidecar.port], 'no inspector (or any other) port opened')
  t.notRegex(sidecar.stderr, /Debugger|inspector/i)
}

test("black box: repeated SIGTERM, SIGINT and SIGQUIT during a held drain are absorbed; the hook is answered at the drain's end, then exit 0", async (t) => {
  const { kube, sidecar, release } = await heldDrain(t)
  const answer = hookAnswer(sidecar)
  await kube.untilWatching()
  sidecar.child.kill('SIGTERM')
  await untilSignals(sidecar, 1, { action: 'drain', signal: 'SIGTERM' })
  await sendEach(sidecar, ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGTERM', 'SIGINT'], { action: 'absorbed', state: 'draining' })
  await stillServing(t, sidecar)
  t.is((await fetch(`${sidecar.url}/ready`)).status, 503, 'still draining')
  release()
  const { status, body } = await answer
  t.is(status, 200)
  t.like(body, { outcome: 'completed', trigger: 'hook' })
  t.deepEqual(await sidecar.exited, { code: 0, signal: null })
  const events = sidecar.logs.map((l) => l.event)
  t.true(events.indexOf('drain_finished') < events.indexOf('exiting'))
  t.is(events.filter((e) => e === 'drain_started').length, 1)
})

test('black box: SIGQUIT drains like SIGTERM and exits 0', async (t) => {
  const sidecar = await startSidecar({ DRAIN_SETTLE: '300ms', DRAIN_TIMEOUT: '10s' })
  t.teardown(() => sidecar.stop())
  sidecar.child.kill('SIGQUIT')
  t.deepEqual(await sidecar.exited, { code: 0, signal: null })
  t.like(
    sidecar.logs.find((l) => l.event === 'drain_finished'),
    { trigger: 'signal', outcome: 'completed' },
  )
})

test('black box: SIGHUP, SIGUSR1 and SIGUSR2 are logged and ignored, while serving and while a hook is held; no inspector opens', async (t) => {
  const { kube, sidecar, release } = await heldDrain(t)
  await sendEach(sidecar, ['SIGHUP', 'SIGUSR1', 'SIGUSR2'], { action: 'ignored', state: 'serving' })
  await stillServing(t, sidecar)
  t.is((await fetch(`${sidecar.url}/ready`)).status, 200, 'still in service: nothing started')

  const answer = hookAnswer(sidecar)
  await kube.untilWatching()
  await sendEach(sidecar, ['SIGUSR1', 'SIGHUP', 'SIGUSR2', 'SIGUSR1'], { action: 'ignored', state: 'draining' })
  await stillServing(t, sidecar)
  release()
  t.like((await answer).body, { outcome: 'completed' })
  await stillServing(t, sidecar)
})

test("black box: run with the image's node arguments, SIGUSR1 is blocked before it can open an inspector", async (t) => {
  const dockerfile = await readFile(new URL('../Dockerfile', import.meta.url), 'utf8')
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[]
  t.is(cmd.at(-1), '/app/drain-coordinator.mjs')
  const sidecar = await startSidecar({ DRAIN_SETTLE: '200ms', DRAIN_TIMEOUT: '10s' }, { nodeArgs: cmd.slice(0, -1) })
  t.teardown(() => sidecar.stop())
  sidecar.child.kill('SIGUSR1')
  // Blocked, the signal stays pending (bit 10 of the shared pending mask): proof it arrived and nothing ran for it.
  const pending = async () =>
    (BigInt(`0x${/^ShdPnd:\s*([0-9a-f]+)$/m.exec(await readFile(`/proc/${sidecar.child.pid}/status`, 'utf8'))![1]}`) & (1n << 9n)) !== 0n
  for (let i = 0; !(await pending()); i++) {
    if (i === 200) return t.fail('SIGUSR1 never showed as pending')
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  await stillServing(t, sidecar)
  sidecar.child.kill('SIGTERM')
  t.deepEqual(await sidecar.exited, { code: 0, signal: null })
})

test('black box: a repeated signal during the final-scrape wait cuts it short; the process exits 0', async (t) => {
  const sidecar = await startSidecar({ DRAIN_SETTLE: '100ms', DRAIN_TIMEOUT: '10s', DRAIN_FINAL_SCRAPE_WAIT: '60s' })
  t.teardown(() => sidecar.stop())
  await fetch(`${sidecar.url}/metrics`).then((r) => r.text())
  t.like((await hookAnswer(sidecar)).body, { outcome: 'completed' })
  sidecar.child.kill('SIGTERM')
  await untilSignals(sidecar, 1, { action: 'drain', state: 'drained' })
  sidecar.child.kill('SIGTERM')
  t.deepEqual(await sidecar.exited, { code: 0, signal: null })
  t.like(
    sidecar.logs.find((l) => l.event === 'final_scrape'),
    { result: 'cut-short' },
  )
  t.like(
    sidecar.logs.find((l) => l.event === 'server_closed'),
    { how: 'closed' },
  )
})

test('black box: run by hand, a SIGUSR1 that comes while start-up is still reading its files opens no inspector', async (t) => {
  // The CA file is a FIFO: start-up blocks opening it, after the bundle's first statement and before the sidecar's
  // own signal handling exists, until the test writes to it.
  const dir = await mkdtemp(join(tmpdir(), 'dc-sigusr1-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const fifo = join(dir, 'ca.crt')
  execFileSync('mkfifo', [fifo])
  const sidecar = await startSidecar(
    {
      DRAIN_KUBE_API_URL: 'https://127.0.0.1:9',
      DRAIN_KUBE_CA_FILE: fifo,
      DRAIN_KUBE_TOKEN_FILE: join(dir, 'token'),
      POD_NAMESPACE: 'default',
      POD_NAME: 'web-1',
    },
    { waitReady: false },
  )
  t.teardown(() => sidecar.stop())
  const blockedOnFifo = async () => {
    const tasks = await readdir(`/proc/${sidecar.child.pid}/task`).catch(() => [])
    const wchans = await Promise.all(tasks.map((task) => readFile(`/proc/${sidecar.child.pid}/task/${task}/wchan`, 'utf8').catch(() => '')))
    return wchans.includes('wait_for_partner')
  }
  for (let i = 0; !(await blockedOnFifo()); i++) {
    if (i === 400) return t.fail('start-up never blocked on the CA FIFO')
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  sidecar.child.kill('SIGUSR1')
  await writeFile(fifo, await readFile(new URL('./fixtures/tls/cluster-ca.crt', import.meta.url), 'utf8'))
  await sidecar.waitForLog('started')
  // An inspector, had the signal opened one, says so on stderr as it starts listening, long before start-up ends.
  t.notRegex(sidecar.stderr, /Debugger|inspector/i)
  t.deepEqual(await listeningPorts(sidecar.child.pid!), [sidecar.port], 'no inspector port')
})
