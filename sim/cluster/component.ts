/**
 * One control-plane component as a child process in its own process group (so a stop reaches everything it
 * started), its output in a log file. Stopped with SIGTERM then SIGKILL; paused and resumed with SIGSTOP and
 * SIGCONT (a hung etcd). A test process that dies without stopping its components still takes them along: every
 * group left running is killed when the process exits; one killed outright cannot, so each group is recorded in the
 * run's directory for the next run's sweep (./leftovers.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { recordGroup } from './leftovers.ts'

const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) signalGroup(child, 'SIGKILL')
})

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal)
  } catch {
    // Already gone.
  }
}

export type Component = {
  name: string
  logFile: string
  readonly pid: number
  /** Resolves when the process has exited, with how. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly running: boolean
  /** The last lines of its log, for error messages. */
  tail(lines?: number): string
  /** SIGTERM, then SIGKILL after STOP_GRACE_MS. */
  stop(): Promise<void>
  kill(): Promise<void>
  pause(): void
  resume(): void
}

/** kube-apiserver, once etcd is gone, may take longer than etcd's few seconds to stop on SIGTERM. */
const STOP_GRACE_MS = 10_000

/** Starts `binary` in its own process group, its output in `<runDir>/<name>.log`, the group recorded in `runDir`. */
export function startComponent(name: string, binary: string, args: string[], runDir: string): Component {
  const logFile = join(runDir, `${name}.log`)
  const fd = openSync(logFile, 'a')
  const child = spawn(binary, args, { detached: true, stdio: ['ignore', fd, fd] })
  closeSync(fd)
  if (child.pid !== undefined) recordGroup(runDir, name, child.pid)
  running.add(child)
  let alive = true
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      alive = false
      running.delete(child)
      resolve({ code, signal })
    })
    child.on('error', () => {
      alive = false
      running.delete(child)
      resolve({ code: null, signal: null })
    })
  })
  const component: Component = {
    name,
    logFile,
    get pid() {
      return child.pid ?? -1
    },
    exited,
    get running() {
      return alive
    },
    tail(lines = 30) {
      try {
        return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
      } catch {
        return ''
      }
    },
    async stop() {
      if (!alive) return
      signalGroup(child, 'SIGCONT')
      signalGroup(child, 'SIGTERM')
      const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), STOP_GRACE_MS)
      await exited
      clearTimeout(timer)
      signalGroup(child, 'SIGKILL') // anything it left behind in its group
    },
    async kill() {
      signalGroup(child, 'SIGKILL')
      await exited
    },
    pause: () => signalGroup(child, 'SIGSTOP'),
    resume: () => signalGroup(child, 'SIGCONT'),
  }
  return component
}
