/**
 * The scale run's API server, in its own process so that it has a core to itself (a real API server does not
 * share a CPU with the 1000 sidecars watching it): the fake Kubernetes API from the tests, over plain HTTP, with
 * the simulated EndpointSlice controller in front. Driven by IPC messages from sim/scale.ts.
 */
import { startControlPlane, type PodRef } from './control-plane.ts'

type Message = { cmd: 'seed'; pods: PodRef[] } | { cmd: 'terminate'; pods: PodRef[] } | { cmd: 'stats' } | { cmd: 'exit' }

const writes: Record<string, number> = {}
const controlPlane = await startControlPlane({
  service: 'web',
  port: 8080,
  controllerDelayMs: 0,
  tls: false,
  onSliceWrite: (name, at) => (writes[name] = at),
})
const reply = (message: unknown) => process.send!(message)

process.on('message', (message: Message) => {
  switch (message.cmd) {
    case 'seed':
      controlPlane.seed(message.pods)
      reply({
        cmd: 'seeded',
        slices: Object.keys(writes).length,
        placement: Object.fromEntries(message.pods.map((p) => [p.name, controlPlane.sliceOf(p)])),
      })
      return
    case 'terminate': {
      // Every pod deleted at once; the controller writes each slice once, with all its pods terminating.
      for (const key of Object.keys(writes)) delete writes[key]
      const started = performance.now()
      controlPlane.applyNow(message.pods.map((pod) => ({ pod, condition: 'terminating' as const })))
      // Time the fake server took to commit every slice and queue its event to every watcher.
      reply({ cmd: 'terminated', writes, fanOutMs: performance.now() - started })
      return
    }
    case 'stats': {
      const requests = controlPlane.kube.requests
      reply({
        cmd: 'stats',
        watchers: controlPlane.kube.watcherCount,
        list: requests.filter((r) => r.verb === 'list').length,
        watch: requests.filter((r) => r.verb === 'watch').length,
        watchBytes: controlPlane.kube.watchBytes,
      })
      return
    }
    case 'exit':
      void controlPlane.close().finally(() => process.exit(0))
  }
})
process.on('disconnect', () => process.exit(0))
reply({ cmd: 'ready', url: controlPlane.kube.url })
