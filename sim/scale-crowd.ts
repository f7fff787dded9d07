/**
 * The scale run's crowd: the sidecars that do not get a process of their own share this one (each wait still has
 * its own client, connection pool and pod identity). sim/scale.ts lowers this process's CPU priority, so that
 * on a small machine the crowd keeps the API server's fan-out real (N watchers, N connections, N LISTs) without
 * taking the cores from the sidecars whose latency is measured in processes of their own. Driven by IPC messages.
 */
import { readdirSync } from 'node:fs'
import { now } from './common.ts'
import type { PodRef } from './control-plane.ts'
import { type ScaleWait, startScaleWait } from './scale-wait.ts'

type Message =
  { cmd: 'start'; url: string; pods: PodRef[]; mode: 'watch' | 'poll'; pollIntervalMs: number } | { cmd: 'report' } | { cmd: 'exit' }

const reply = (message: unknown) => process.send!(message)
const abort = new AbortController()
const waits: ScaleWait[] = []
const resolvedAt: Record<string, number> = {}

process.on('message', (message: Message) => {
  switch (message.cmd) {
    case 'start': {
      const { url, pods, mode, pollIntervalMs } = message
      const done = pods.map((pod) => {
        const wait = startScaleWait({ url, pod, mode, pollIntervalMs, signal: abort.signal })
        waits.push(wait)
        return wait.done.then(
          () => void (resolvedAt[pod.name] = now()),
          () => {},
        )
      })
      void Promise.all(done).then(() => reply({ cmd: 'all-resolved' }))
      reply({ cmd: 'started' })
      return
    }
    case 'report': {
      let openFds: number | undefined
      try {
        openFds = readdirSync('/proc/self/fd').length
      } catch {
        openFds = undefined
      }
      reply({ cmd: 'report', resolvedAt, bytes: waits.reduce((sum, wait) => sum + wait.bytes(), 0), openFds })
      return
    }
    case 'exit':
      abort.abort(new Error('scale run over'))
      void Promise.allSettled(waits.map((wait) => wait.close())).finally(() => process.exit(0))
  }
})
process.on('disconnect', () => process.exit(0))
reply({ cmd: 'ready' })
