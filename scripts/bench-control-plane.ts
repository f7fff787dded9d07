// The rollout's control-plane delays measured on a real one (npm run bench -- --control-plane=real): etcd,
// kube-apiserver and kube-controller-manager from the test tools (sim/cluster/cluster.ts). N pods behind a
// Service are deleted one at a time, as a rollout with maxUnavailable 1 deletes them; for each, the time from the
// DELETE to the EndpointSlice controller's terminating write (seen on an admin WATCH), and the time from the DELETE
// to the hook's release by the sidecar bundle running as that pod's sidecar (DRAIN_SETTLE=0, so the release delay
// is the controller's delay plus the sidecar's own). The simulated control plane assumes 100 ms for the first.
//   node scripts/bench-control-plane.ts [--pods=20] [--out=bench-results]
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { median, percentile } from '../sim/common.ts'
import { startCluster } from '../sim/cluster/cluster.ts'
import { callHook, createService, namespaceWithRbac, readyPod, startPodSidecar } from '../sim/cluster/cluster-fixture.ts'
import { ensureNode, deletePodGracefully, finishPod } from '../sim/cluster/kubelet.ts'

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '20' },
    out: { type: 'string', default: 'bench-results' },
    'control-plane': { type: 'string' },
  },
  strict: false,
})
const pods = Number(values.pods)
if (!Number.isInteger(pods) || pods < 1 || pods > 500) {
  console.error(`--pods=${values.pods} is not valid: expected a whole number from 1 to 500`)
  process.exit(2)
}

const cluster = await startCluster()
// Aborted first when the run ends, by success or error: the watch loop must end before the cluster it reads stops.
const stop = new AbortController()
try {
  console.log(
    `real control plane ready in ${(cluster.timings.total! / 1000).toFixed(1)} s (kube-apiserver ${(cluster.timings.apiserver! / 1000).toFixed(1)} s)`,
  )
  await ensureNode(cluster.admin)
  const ns = await namespaceWithRbac(cluster, 'bench')
  await createService(cluster, ns, 'web', { app: 'web' })
  const ready = []
  for (let i = 0; i < pods; i++) ready.push(await readyPod(cluster, ns, `web-${i}`, { labels: { app: 'web' } }))

  // Every slice write of the namespace, as it arrives: when each pod's endpoint was first seen terminating.
  const terminatingAt = new Map<string, number>()
  const list = await cluster.admin.get(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`)
  const watch = await cluster.admin.watch(
    `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
    { resourceVersion: list.metadata.resourceVersion, timeoutSeconds: '3600' },
    stop.signal,
  )
  void (async () => {
    for await (const event of watch.events) {
      for (const endpoint of event.object.endpoints ?? []) {
        const uid = endpoint.targetRef?.uid
        if (uid && endpoint.conditions?.terminating && !terminatingAt.has(uid)) terminatingAt.set(uid, performance.now())
      }
    }
  })()

  const controllerMs: number[] = []
  const releaseMs: number[] = []
  for (const pod of ready) {
    const sidecar = await startPodSidecar(cluster, pod, { DRAIN_SETTLE: '0', DRAIN_TIMEOUT: '30s' })
    try {
      await sidecar.waitForLog('kube_access_ok')
      const deletedAt = performance.now()
      await deletePodGracefully(cluster.admin, ns, pod.name, 60)
      const answer = await callHook(sidecar)
      if (answer.body.outcome !== 'completed') throw new Error(`pod ${pod.name}: hook answered ${JSON.stringify(answer.body)}`)
      const written = terminatingAt.get(pod.uid)
      if (written === undefined) throw new Error(`pod ${pod.name}: the hook was released, but no terminating write was seen`)
      controllerMs.push(written - deletedAt)
      releaseMs.push(answer.at - deletedAt)
      await finishPod(cluster.admin, ns, pod.name, pod.uid)
    } finally {
      await sidecar.stop()
    }
  }

  const row = (name: string, ms: number[]) =>
    `| ${name} | ${ms.length} | ${fmt(median(ms))} | ${fmt(percentile(ms, 95))} | ${fmt(Math.max(...ms))} |`
  const table = [
    `Real control plane (etcd, kube-apiserver, kube-controller-manager 1.35 on this machine), ${pods} pods deleted one at a time:`,
    '',
    "| from the pod's DELETE to | pods | median ms | p95 ms | max ms |",
    '|---|---|---|---|---|',
    row("the controller's terminating write (the simulator assumes 100)", controllerMs),
    row("the sidecar's release of the hook (DRAIN_SETTLE=0)", releaseMs),
  ].join('\n')
  console.log(`\n${table}`)
  mkdirSync(values.out as string, { recursive: true })
  const file = join(values.out as string, `control-plane-real-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify({ pods, startup: cluster.timings, controllerMs, releaseMs }, null, 2))
  console.log(`\nJSON: ${file}`)
} finally {
  stop.abort()
  await cluster.stop()
}

function fmt(ms: number | undefined): string {
  return ms === undefined ? '-' : ms.toFixed(0)
}
