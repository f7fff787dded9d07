/**
 * A control plane whose test process was SIGKILLed (no exit handler runs) keeps running; the next start sweeps it.
 * The killed run is a child Node process that starts the plane with startCluster, under a TMPDIR of this test's
 * own, so the sweep here looks only at runs this file made.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import test from 'ava'
import { createRunDir, GROUPS_FILE, OWNER_FILE, sweepClusterLeftovers } from '../../sim/cluster/leftovers.ts'
import { sleep } from '../../sim/common.ts'

const CHILD = new URL('../helpers/cluster-owner-child.ts', import.meta.url).pathname

/** /proc/PID/stat's state and start time; undefined once the process is gone. A zombie (Z) has finished. */
function stat(pid: number): { state: string; start: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return { state: fields[0]!, start: Number(fields[19]) }
  } catch {
    return undefined
  }
}
const running = (pid: number) => {
  const s = stat(pid)
  return s !== undefined && s.state !== 'Z'
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`)
    await sleep(50)
  }
}

type Report = { dir: string; components: Array<{ name: string; pid: number }> }

/** Starts the child run under `root`; resolves with its report once its control plane is up. */
function startRun(root: string, args: string[] = []) {
  const child = spawn(process.execPath, [CHILD, ...args], { env: { ...process.env, TMPDIR: root }, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)))
  const report = new Promise<Report>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', (line) => resolve(JSON.parse(line)))
    void exited.then(() => reject(new Error(`the child exited before its control plane was up: ${stderr}`)))
  })
  return { child, exited, report }
}

test('a SIGKILLed run leaves its control plane running; the next start kills it and removes its directory, and leaves a live run alone', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'dc-sweep-test-'))
  const { child, exited, report: reported } = startRun(root)
  let pids: number[] = []
  t.teardown(async () => {
    child.kill('SIGKILL')
    // Only when the sweep failed: the components must not outlive the test.
    for (const pid of pids.filter(running)) {
      try {
        process.kill(-pid, 'SIGKILL')
      } catch {
        // gone meanwhile
      }
    }
    await rm(root, { recursive: true, force: true })
  })
  const report = await reported
  pids = report.components.map((c) => c.pid)
  t.deepEqual(
    report.components.map((c) => c.name),
    ['etcd', 'kube-apiserver', 'kube-controller-manager'],
  )

  // The owner is alive (a parallel test file's plane): a start now leaves it be.
  const ours = await createRunDir(root)
  t.true(pids.every(running), 'a live run keeps its components')
  t.true(existsSync(report.dir), "a live run's directory stays")

  child.kill('SIGKILL')
  await exited
  await sleep(500)
  t.true(pids.every(running), 'with its test process SIGKILLed, the control plane is still running (so there is something to sweep)')

  t.deepEqual(sweepClusterLeftovers(root), [report.dir], 'the sweep removes the killed run, not this live one')
  await until('every component of the killed run gone', () => !pids.some(running))
  t.false(existsSync(report.dir))
  t.true(existsSync(ours), "this test's own run directory (its owner alive) stays")
})

/** A `sleep 60` in its own process group, killed when the test ends; resolves with its pid and start time. */
async function sleeper(t: import('ava').ExecutionContext): Promise<{ pid: number; start: number }> {
  const child = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' })
  t.teardown(() => child.kill('SIGKILL'))
  await until('the sleep started', () => stat(child.pid!) !== undefined)
  return { pid: child.pid!, start: stat(child.pid!)!.start }
}

test("a recorded pid that now belongs to another process is not signalled; the dead run's directory still goes, a live owner's run stays", async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'dc-sweep-test-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  const runDir = async (name: string, owner: { pid: number; start: number }, group: { pid: number; start: number }) => {
    const dir = join(root, `dc-cluster-${name}`)
    await mkdir(dir)
    await writeFile(join(dir, OWNER_FILE), JSON.stringify({ ...owner, boot }) + '\n')
    await writeFile(join(dir, GROUPS_FILE), JSON.stringify({ name: 'etcd', ...group, boot }) + '\n')
    return dir
  }
  // The owner of a run still going (a parallel test file's) and that run's component.
  const owner = await sleeper(t)
  const component = await sleeper(t)
  const live = await runDir('live', owner, component)
  // A process of no run, standing in for one that took a dead component's pid.
  const stranger = await sleeper(t)
  // A dead run whose owner's pid and component's pid were both taken again: the same pids, other start times.
  const reused = await runDir('reused', { ...owner, start: owner.start - 1 }, { ...stranger, start: stranger.start - 1 })

  t.deepEqual(sweepClusterLeftovers(root), [reused], 'only the run whose owner is gone is swept')
  await sleep(300)
  t.true(running(stranger.pid), 'the process that reused the component pid is left running')
  t.true(running(owner.pid), 'the live owner, whose pid the dead run also recorded, is not signalled')
  t.true(existsSync(live), "the live owner's run directory stays")
  t.true(running(component.pid), "the live owner's component is left running")
})

test('a run that stopped its plane and kept its logs (a failed test file) is not swept', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'dc-sweep-test-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const { exited, report } = startRun(root, ['keep-logs'])
  const { dir, components } = await report
  await exited
  t.false(components.map((c) => c.pid).some(running), 'the plane was stopped')
  t.deepEqual(sweepClusterLeftovers(root), [])
  t.true(existsSync(join(dir, 'etcd.log')), 'its logs stay for a person to read')
})
