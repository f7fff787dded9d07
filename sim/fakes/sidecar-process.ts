/**
 * Runs the built sidecar (dist/drain-coordinator.mjs) as a child process, the way the image runs it, and reads
 * its JSON log lines. For the few black-box tests; everything timing-sensitive is unit-tested with a fake clock.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { IMAGE_NODE_FLAGS } from '../../scripts/node-flags.mjs'
import { createWakeups } from '../common.ts'

export const BUNDLE = fileURLToPath(new URL('../../dist/drain-coordinator.mjs', import.meta.url))

/**
 * The image's Node flags (scripts/node-flags.mjs) but --disable-sigusr1: the black-box tests run the bundle as a
 * user starting it by hand would, so the sidecar's own SIGUSR1 listener is what they exercise (test/signals.test.ts
 * also runs the image's exact CMD).
 */
export const NODE_FLAGS = IMAGE_NODE_FLAGS.filter((flag) => flag !== '--disable-sigusr1')

export type LogLine = { time: string; level: string; event: string } & Record<string, unknown>

export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export type SidecarOptions = {
  waitReady?: boolean
  /** Arguments for node before the bundle's path; default NODE_FLAGS (the image's CMD adds --disable-sigusr1). */
  nodeArgs?: string[]
}

export async function startSidecar(env: Record<string, string>, options: SidecarOptions = {}): Promise<Sidecar> {
  if (env.DRAIN_PORT) return spawnSidecar(env, Number(env.DRAIN_PORT), options)
  // freePort's port is free when asked, but another test process may bind it before the sidecar does: on that
  // one start-up error, try another port.
  for (let attempt = 1; ; attempt++) {
    const sidecar = await spawnSidecar(env, await freePort(), options).catch((error: unknown) => error as Error)
    if (!(sidecar instanceof Error)) return sidecar
    if (attempt === 3 || !/EADDRINUSE/.test(sidecar.message)) throw sidecar
  }
}

/** The pod a sidecar runs beside, as its environment names it; `ip` is POD_IP (one address or a list). */
export type SidecarPod = { namespace: string; name: string; uid: string; ip: string }

/**
 * The sidecar of `pod` against the fake API server `kube` (sim/fakes/fake-kube.ts): its URL and CA, and a token
 * file with the fake's default token, written to a temporary directory that stop() removes. `env` adds the drain's
 * settings (DRAIN_TIMEOUT, DRAIN_SETTLE, ...) or overrides any of these.
 */
export async function startSidecarAgainst(
  kube: { url: string; caFile: string },
  pod: SidecarPod,
  env: Record<string, string> = {},
  options: SidecarOptions = {},
): Promise<Sidecar> {
  const dir = await mkdtemp(join(tmpdir(), 'dc-sidecar-'))
  const removeDir = () => rm(dir, { recursive: true, force: true })
  await writeFile(join(dir, 'token'), 'test-token\n')
  const sidecar = await startSidecar(
    {
      DRAIN_KUBE_API_URL: kube.url,
      DRAIN_KUBE_CA_FILE: kube.caFile,
      DRAIN_KUBE_TOKEN_FILE: join(dir, 'token'),
      POD_NAMESPACE: pod.namespace,
      POD_NAME: pod.name,
      POD_UID: pod.uid,
      POD_IP: pod.ip,
      ...env,
    },
    options,
  ).catch(async (error: unknown) => {
    await removeDir()
    throw error
  })
  const stop = sidecar.stop
  sidecar.stop = async () => {
    await stop()
    await removeDir()
  }
  return sidecar
}

async function spawnSidecar(env: Record<string, string>, port: number, { waitReady = true, nodeArgs = [...NODE_FLAGS] }: SidecarOptions) {
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, BUNDLE], {
    env: { PATH: process.env.PATH ?? '', DRAIN_PORT: String(port), DRAIN_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const logs: LogLine[] = []
  let stderr = ''
  const wakeups = createWakeups()
  createInterface({ input: child.stdout!, crlfDelay: Infinity }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine)
    } catch {
      logs.push({ time: '', level: 'raw', event: 'non_json_line', line })
    }
    wakeups.wakeAll()
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close', not 'exit': only then has every line the process wrote been read.
    child.on('close', (code, signal) => {
      wakeups.wakeAll()
      resolve({ code, signal })
    })
  })
  let exitedYet = false
  void exited.then(() => (exitedYet = true))

  const sidecar = {
    url: `http://127.0.0.1:${port}`,
    port,
    child,
    logs,
    exited,
    get stderr() {
      return stderr
    },
    /** Resolves with the first log line of that event (and matching fields), waiting for it if need be. */
    async waitForLog(event: string, match: Record<string, unknown> = {}, timeoutMs = 15_000): Promise<LogLine> {
      return (await sidecar.waitForLogs(event, match, 1, timeoutMs))[0]!
    },
    /** Resolves with the first `count` log lines of that event (and matching fields), waiting for them if need be. */
    async waitForLogs(event: string, match: Record<string, unknown>, count: number, timeoutMs = 15_000): Promise<LogLine[]> {
      const found = () => logs.filter((line) => line.event === event && Object.entries(match).every(([k, v]) => line[k] === v))
      const until = performance.now() + timeoutMs
      for (;;) {
        const lines = found()
        if (lines.length >= count) return lines.slice(0, count)
        const what = `${count === 1 ? 'a' : count} ${event} log line(s) ${JSON.stringify(match)}, saw ${lines.length}`
        if (exitedYet) throw new Error(`sidecar exited before logging ${what}; stderr: ${stderr}`)
        if (performance.now() > until) throw new Error(`not within ${timeoutMs}ms: ${what}; events: ${logs.map((l) => l.event).join(', ')}`)
        await wakeups.next()
      }
    },
    async stop() {
      if (!exitedYet) child.kill('SIGKILL')
      await exited
    },
  }
  // A sidecar that never logs 'started' would otherwise outlive the error (and startSidecar's retries).
  if (waitReady)
    await sidecar.waitForLog('started').catch(async (error: unknown) => {
      await sidecar.stop()
      throw error
    })
  return sidecar
}

export type Sidecar = Awaited<ReturnType<typeof spawnSidecar>>
