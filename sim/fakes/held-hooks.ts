/**
 * Many callers of /prestop at once, each on its own connection, against a drain the test ends when it likes, for
 * the load tests and `npm run bench` (scripts/bench-hooks.ts); and the memory of the sidecar's process, from /proc.
 */
import { readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { sleep } from '../common.ts'
import { startFakeKube } from './fake-kube.ts'
import { endpointSlice, READY, TERMINATING } from './fixtures.ts'
import { type Sidecar, startSidecarAgainst } from './sidecar-process.ts'

export type HookAnswer = { status: number; body: string; at: number }

/**
 * Sends `count` GET /prestop, one connection each, and resolves once the sidecar holds all of them (it logged a
 * drain_started or drain_joined line for each). `answers` resolves with every answer and its arrival (Date.now()).
 */
export async function holdHooks(sidecar: Sidecar, count: number, timeoutMs = 60_000): Promise<{ answers: Promise<HookAnswer[]> }> {
  const joinedBefore = sidecar.logs.filter((l) => l.event === 'drain_joined' || l.event === 'drain_started').length
  // Raw sockets rather than an HTTP client: the time an answer arrives is its first byte, not the end of this
  // process's own (slower) parsing of 2000 responses.
  const answers = Array.from(
    { length: count },
    () =>
      new Promise<HookAnswer>((resolve, reject) => {
        const socket = connect(sidecar.port, '127.0.0.1')
        let text = ''
        let at = 0
        socket.setEncoding('latin1').on('data', (chunk: string) => {
          at ||= Date.now()
          text += chunk
        })
        socket.on('error', reject)
        socket.on('close', () => {
          const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0)
          resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4), at })
        })
        socket.write('GET /prestop HTTP/1.1\r\nHost: drain-coordinator\r\nUser-Agent: held-hooks\r\nConnection: close\r\n\r\n')
      }),
  )
  const until = performance.now() + timeoutMs
  const held = () => sidecar.logs.filter((l) => l.event === 'drain_joined' || l.event === 'drain_started').length - joinedBefore
  while (held() < count) {
    if (performance.now() > until) throw new Error(`only ${held()} of ${count} hooks held after ${timeoutMs}ms`)
    await sleep(20)
  }
  return { answers: Promise.all(answers) }
}

/** Resident memory of a process in bytes: now (VmRSS) and its peak so far (VmHWM). */
export async function processMemory(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1]) * 1024
  return { rss: kib('VmRSS'), peak: kib('VmHWM') }
}

/**
 * A bundle run whose drain holds until the test takes the pod's endpoint out of its slice (`release`), so the
 * hooks are held as long as the test needs, whatever the machine's speed.
 */
export async function startHeldDrain(env: Record<string, string> = {}) {
  const kube = await startFakeKube()
  const me = { ip: '10.0.0.1', podName: 'web-1', uid: 'uid-1' }
  const slice = (state: typeof READY | typeof TERMINATING) =>
    endpointSlice({ name: 'web-a', service: 'web', endpoints: [{ ...me, ...state }] })
  kube.upsert(slice(READY))
  const pod = { namespace: 'default', name: me.podName, uid: me.uid, ip: me.ip }
  const sidecar = await startSidecarAgainst(kube, pod, { DRAIN_SETTLE: '200ms', DRAIN_TIMEOUT: '60s', ...env }).catch(
    async (error: unknown) => {
      await kube.close()
      throw error
    },
  )
  await sidecar.waitForLog('kube_access_ok').catch(async (error: unknown) => {
    await sidecar.stop()
    await kube.close()
    throw error
  })
  return {
    kube,
    sidecar,
    release: () => kube.upsert(slice(TERMINATING)),
    /** The drain's end as the sidecar logged it (Date.now() scale, millisecond resolution). */
    finishedAt: async () => Date.parse((await sidecar.waitForLog('drain_finished')).time),
    async close() {
      await sidecar.stop()
      await kube.close()
    },
  }
}
