/**
 * What a control plane leaves when the process that started it is killed outright (SIGKILL: a crashed or timed-out
 * test run, a killed bench), where no exit handler runs: its components' process groups, still running, and its
 * directory under the temp dir. So each run records, in its own directory, its owner (the process that starts the
 * components) and every component's process group the moment it starts; the next start sweeps every run directory
 * whose owner is gone, as sim/netns.ts does for namespaces and subnet locks.
 *
 * A pid alone does not say "ours": the kernel reuses pids. Each record holds the process's start time
 * (/proc/PID/stat, clock ticks since boot, kept across exec, so also right for kube-proxy's `env ... ip netns exec`
 * chain) and the machine's boot id; a live process with another start time is someone else's and is never
 * signalled. A directory with no owner record is left alone: logs kept on purpose (keepRunDir), older code's, or a
 * run killed between creating its directory and writing the record, which cannot be told apart from one starting. Linux only (/proc);
 * elsewhere nothing is recorded or swept.
 */
import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const RUN_DIR_PREFIX = 'dc-cluster-'
export const OWNER_FILE = 'owner.json'
export const GROUPS_FILE = 'process-groups.jsonl'
const HAS_PROC = existsSync('/proc/self/stat')

/** A process as recorded: its pid and start time; `boot` is the machine's boot id when it was recorded. */
export type ProcessRecord = { pid: number; start: number; boot: string }
export type GroupRecord = ProcessRecord & { name: string }

function bootId(): string {
  return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
}

/** The process's start time and state from /proc/PID/stat; undefined when there is no such process. */
function procStat(pid: number): { start: number; zombie: boolean } | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // After the command name (which may hold spaces and parentheses): state is field 3, starttime field 22.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { start: Number(fields[19]), zombie: fields[0] === 'Z' }
}

function recordOf(pid: number): ProcessRecord | undefined {
  const stat = procStat(pid)
  return stat && { pid, start: stat.start, boot: bootId() }
}

/** Whether the recorded process is still that same process and running (a zombie has finished). */
function stillRunning(record: ProcessRecord): boolean {
  if (record.boot !== bootId()) return false
  const stat = procStat(record.pid)
  return stat !== undefined && !stat.zombie && stat.start === record.start
}

/** Sweeps what killed runs left, then makes this run's directory with this process recorded as its owner. */
export async function createRunDir(root = tmpdir()): Promise<string> {
  sweepClusterLeftovers(root)
  const dir = await mkdtemp(join(root, RUN_DIR_PREFIX))
  const owner = HAS_PROC ? recordOf(process.pid) : undefined
  if (owner) writeFileSync(join(dir, OWNER_FILE), JSON.stringify(owner) + '\n')
  return dir
}

/**
 * Records a component's process group (its leader's pid: each runs detached) in the run's directory. Synchronous
 * and called right after spawn, so only a kill within that instant leaves a group unrecorded.
 */
export function recordGroup(dir: string, name: string, pid: number): void {
  const record = HAS_PROC ? recordOf(pid) : undefined
  if (record) appendFileSync(join(dir, GROUPS_FILE), JSON.stringify({ name, ...record }) + '\n')
}

/**
 * For a run that stopped its components and keeps its directory for a person to read (a failed test's logs): drops
 * the records, so no later sweep removes the logs.
 */
export function keepRunDir(dir: string): void {
  rmSync(join(dir, OWNER_FILE), { force: true })
  rmSync(join(dir, GROUPS_FILE), { force: true })
}

function readJson<T>(file: string): T[] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as T)
  } catch {
    return []
  }
}

/**
 * For every run directory under `root` whose recorded owner is no longer running: SIGKILLs its recorded process
 * groups that are still ours, then removes the directory. Returns the directories removed.
 */
export function sweepClusterLeftovers(root = tmpdir()): string[] {
  if (!HAS_PROC) return []
  let names: string[]
  try {
    names = readdirSync(root).filter((name) => name.startsWith(RUN_DIR_PREFIX))
  } catch {
    return []
  }
  const removed: string[] = []
  for (const name of names) {
    const dir = join(root, name)
    const owner = readJson<ProcessRecord>(join(dir, OWNER_FILE))[0]
    if (owner === undefined || stillRunning(owner)) continue
    for (const group of readJson<GroupRecord>(join(dir, GROUPS_FILE))) killGroup(group)
    try {
      rmSync(dir, { recursive: true, force: true })
      removed.push(dir)
    } catch {
      // Another user's, or going away under a parallel sweep: not this run's to fail over.
    }
  }
  return removed
}

/**
 * SIGKILLs the recorded group unless its pid now belongs to another process. With the leader gone but members
 * left, the group keeps its id: the kernel does not hand a pid out again while a process group still holds it.
 */
function killGroup(group: GroupRecord): void {
  if (group.boot !== bootId()) return // rebooted since: nothing of that run is running
  const leader = procStat(group.pid)
  if (leader !== undefined && leader.start !== group.start) return
  try {
    process.kill(-group.pid, 'SIGKILL')
  } catch {
    // ESRCH: already gone. EPERM: another user's group, so not ours.
  }
}
