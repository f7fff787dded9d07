/**
 * kube-proxy as a real data plane (sim/data-plane.ts; needs root): a real control plane and kube-proxy (nftables)
 * in a node network namespace, two pods as network namespaces on the run's bridge. The Service's ClusterIP,
 * reached from the node namespace, lands in both pods' namespaces through the kernel's NAT; after a graceful delete
 * of one pod and its sidecar's release of the hook, new connections no longer reach it, although its app still
 * serves on its own address: kube-proxy, not a dead app, turned them away.
 */
import { spawnSync } from 'node:child_process'
import test from 'ava'
import { killAllChildren } from '../../sim/common.ts'
import { type DataPlane, startDataPlane } from '../../sim/data-plane.ts'
import { APP_PORT, type DataPlanePod, DRAIN_PORT, startDataPlanePod } from '../../sim/data-plane-pod.ts'
import { simNamespaces } from '../../sim/netns.ts'
import { createService, namespaceWithRbac } from '../../sim/cluster/cluster-fixture.ts'
import { waitFor } from '../../sim/cluster/kube-admin.ts'
import { deletePodGracefully, setPodStatus } from '../../sim/cluster/kubelet.ts'

let dp: DataPlane | undefined
let failed = false

test.before(async () => {
  if (process.getuid?.() !== 0)
    throw new Error('the data-plane test needs root: kube-proxy and the pods run in network namespaces (run the cluster tier as root)')
  dp = await startDataPlane()
})
test.afterEach((t) => {
  if (!t.passed) failed = true
})
test.after.always('everything stopped, and no namespace of this run left', async (t) => {
  await killAllChildren()
  await dp?.close({ keepLogs: failed })
  if (failed && dp) process.stderr.write(`data-plane test failed: control-plane and kube-proxy logs kept in ${dp.cluster.dir}\n`)
  t.deepEqual(
    simNamespaces().filter((name) => name.startsWith(`dc-${process.pid}-`)),
    [],
  )
})

/** `count` requests to the ClusterIP from the node namespace, each on a new connection; the pod address of each answer. */
function requestFromNode(d: DataPlane, url: string, count: number): string[] {
  const script = `
    const out = []
    for (let i = 0; i < ${count}; i++) {
      try {
        const r = await fetch(${JSON.stringify(url)}, { headers: { connection: 'close' }, signal: AbortSignal.timeout(2000) })
        out.push((await r.text()).trim().replace(/^served by /, ''))
      } catch (e) { out.push('error: ' + (e.cause?.code ?? e.message)) }
    }
    console.log(JSON.stringify(out))`
  const run = spawnSync('ip', ['netns', 'exec', d.nodeNs, process.execPath, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  })
  if (run.status !== 0) throw new Error(`client in the node namespace failed: ${run.stderr}`)
  return JSON.parse(run.stdout) as string[]
}

test('a Service ClusterIP through kube-proxy reaches both pod namespaces; after the sidecar releases a deleted pod, new connections go only to the other', async (t) => {
  const d = dp!
  const { cluster } = d
  const ns = await namespaceWithRbac(cluster, 'dataplane')
  const service = await createService(cluster, ns, 'web', { app: 'web' })
  const clusterIp = service.spec.clusterIP as string
  t.regex(clusterIp, /^198\.19\./)

  const pods: DataPlanePod[] = []
  for (const name of ['web-a', 'web-b']) {
    const pod = await startDataPlanePod(d, {
      name,
      namespace: ns,
      graceSeconds: 60,
      appEnv: { SIM_WORK_MS: '1' },
      ...(name === 'web-a' ? { sidecarEnv: () => ({ DRAIN_SETTLE: '1s', DRAIN_QUIET_PERIOD: '0', DRAIN_TIMEOUT: '30s' }) } : {}),
    })
    await setPodStatus(cluster.admin, ns, name, { ips: [pod.ip], ready: true })
    pods.push(pod)
  }
  const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]]
  await waitFor('kube-proxy routes to both pods', async () => (d.routesTo(a.ip) && d.routesTo(b.ip)) || undefined, {
    timeoutMs: 30_000,
    intervalMs: 200,
  }).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; kube-proxy's table:\n${d.rules()}\nkube-proxy log:\n${d.kubeProxy.tail(40)}`, {
      cause: error,
    })
  })

  // Random choice per connection: 40 connections miss one of two pods with probability 2^-39.
  const before = requestFromNode(d, `http://${clusterIp}/`, 40)
  t.deepEqual([...new Set(before)].sort(), [a.ip, b.ip].sort(), JSON.stringify(before))

  // The rollout's graceful delete, then the kubelet's hook call from the node's side; the sidecar releases it only
  // once the controller has written the endpoint as terminating (and the settle has passed).
  await deletePodGracefully(cluster.admin, ns, a.name, 60)
  const answer = await fetch(`http://${a.ip}:${DRAIN_PORT}/prestop`, { signal: AbortSignal.timeout(60_000) })
  t.like(await answer.json(), { outcome: 'completed' })
  // kube-proxy applies changes at most once a second (--min-sync-period): on a busy machine its rules may trail the
  // release by a moment, which the settle is there to cover. Bounded, and logged.
  const releasedAt = performance.now()
  await waitFor('kube-proxy stops routing to the released pod', async () => !d.routesTo(a.ip) || undefined, {
    timeoutMs: 10_000,
    intervalMs: 50,
  })
  t.log(`kube-proxy's rules dropped the pod ${Math.round(performance.now() - releasedAt)} ms after the hook's release`)

  const after = requestFromNode(d, `http://${clusterIp}/`, 40)
  t.deepEqual([...new Set(after)], [b.ip], JSON.stringify(after))
  // The old pod's app still serves on its own address: the ClusterIP stopped sending it connections, not the app.
  const direct = await fetch(`http://${a.ip}:${APP_PORT}/`).then((r) => r.text())
  t.is(direct.trim(), `served by ${a.ip}`)
  t.false(a.app.hasExited())
})
