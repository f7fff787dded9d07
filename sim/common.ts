/**
 * Shared bits of the simulator: one time scale for every process, the child-process bookkeeping that makes sure
 * each process started is killed at the end, and small statistics helpers.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/**
 * Wall-clock milliseconds with sub-millisecond resolution. Every simulated process (they are separate Node
 * processes) reports its events on this scale, so one timeline can be built from all of them.
 */
export function now(): number {
  return performance.timeOrigin + performance.now()
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)))

/** Resolves with the promise's value, or with undefined after `ms`; the timer never outlives the race. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms, undefined)))])
  } finally {
    clearTimeout(timer)
  }
}

export const SIM_DIR = fileURLToPath(new URL('.', import.meta.url))

/**
 * How a reader of a child's output waits for a line not yet there: next() resolves at the next wakeAll() (a new
 * line, the exit) or after `ms`, whichever comes first, and the caller looks again.
 */
export function createWakeups() {
  const waiters = new Set<() => void>()
  return {
    wakeAll(): void {
      for (const wake of waiters) wake()
    },
    next(ms = 50): Promise<void> {
      return new Promise<void>((resolve) => {
        const wake = () => {
          waiters.delete(wake)
          resolve()
        }
        waiters.add(wake)
        setTimeout(wake, ms)
      })
    },
  }
}

/** One JSON object per stdout line, `{ at, event, ...fields }`: how the child processes report to the scenario. */
export type ChildEvent = { at: number; event: string } & Record<string, unknown>

export function emit(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ at: now(), event, ...fields }) + '\n')
}

export type Child = {
  name: string
  process: ChildProcess
  events: ChildEvent[]
  /** Raw stdout lines that were not simulator events (the sidecar's own JSON log lines). */
  lines: string[]
  stderr(): string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>
  hasExited(): boolean
  waitFor(event: string, timeoutMs: number, match?: (e: ChildEvent) => boolean): Promise<ChildEvent>
}

/** Every child started by this module, so a failing run can still kill them all. */
const running = new Set<Child>()

/** `netns`: run the child inside that network namespace (`ip netns exec` execs it in place: same pid, same signals). */
export function startChild(name: string, args: string[], env: Record<string, string>, netns?: string): Child {
  const [command, argv] = netns === undefined ? [process.execPath, args] : ['ip', ['netns', 'exec', netns, process.execPath, ...args]]
  const child = spawn(command, argv, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const events: ChildEvent[] = []
  const lines: string[] = []
  let stderr = ''
  let done = false
  const wakeups = createWakeups()
  createInterface({ input: child.stdout!, crlfDelay: Infinity }).on('line', (line) => {
    let parsed: unknown
    try {
      parsed = JSON.parse(line)
    } catch {
      parsed = undefined
    }
    if (parsed && typeof parsed === 'object' && typeof (parsed as ChildEvent).at === 'number') events.push(parsed as ChildEvent)
    else lines.push(line)
    wakeups.wakeAll()
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    if (stderr.length < 20_000) stderr += chunk
  })
  const handle: Child = {
    name,
    process: child,
    events,
    lines,
    stderr: () => stderr,
    exited: new Promise((resolve) => {
      // 'close', not 'exit': only then has every line the child wrote been read, so waitFor never gives up on a
      // report that is still in the pipe.
      child.on('close', (code, signal) => {
        done = true
        running.delete(handle)
        wakeups.wakeAll()
        resolve({ code, signal, at: now() })
      })
    }),
    hasExited: () => done,
    async waitFor(event, timeoutMs, match = () => true) {
      const until = now() + timeoutMs
      for (;;) {
        const found = events.find((e) => e.event === event && match(e))
        if (found) return found
        if (done) throw new Error(`${name} exited before reporting ${event}; stderr: ${stderr.slice(-2000)}`)
        if (now() > until) throw new Error(`${name}: no ${event} within ${timeoutMs}ms; stderr: ${stderr.slice(-2000)}`)
        await wakeups.next()
      }
    },
  }
  running.add(handle)
  return handle
}

/** SIGKILLs every child still running and waits (bounded) for them to go. */
export async function killAllChildren(): Promise<void> {
  const all = [...running]
  for (const child of all) child.process.kill('SIGKILL')
  await within(Promise.all(all.map((c) => c.exited)), 5_000)
}

// A crash or Ctrl-C of the scenario must not leave simulated pods behind.
process.once('exit', () => {
  for (const child of running) child.process.kill('SIGKILL')
})

export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length) - 1
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]
}

export const median = (values: readonly number[]) => percentile(values, 50)
