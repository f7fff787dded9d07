/**
 * kube-proxy as a real data plane (sim/data-plane.ts; needs root): a real control plane and kube-proxy in a node
 * network namespace, two pods as network namespaces on the run's bridge; once in nftables mode and once in iptables
 * mode, each with its own control plane, one after the other. The Service's ClusterIP,
 * reached from the node namespace, lands in both pods' namespaces through the kernel's NAT; after a graceful delete
 * of one pod and its sidecar's release of the hook, new connections no longer reach it, although its app still
 * serves on its own address: kube-proxy, not a dead app, turned them away.
 */
import { spawnSync } from 'node:child_process'
import test, { type ExecutionContext } from 'ava'
import { killAllChildren } from '../../sim/common.ts'
import { type DataPlane, startDataPlane } from '../../sim/data-plane.ts'
import { listRules, PROXY_MODES, type ProxyMode, SYSTEM_PATH } from '../../sim/proxy-rules.ts'
import { APP_PORT, type DataPlanePod, DRAIN_PORT, startDataPlanePod } from '../../sim/data-plane-pod.ts'
import { simNamespaces } from '../../sim/netns.ts'
import { createService, namespaceWithRbac } from '../../sim/cluster/cluster-fixture.ts'
import { waitFor } from '../../sim/cluster/kube-admin.ts'
import { deletePodGracefully, setPodStatus } from '../../sim/cluster/kubelet.ts'

let current: DataPlane | undefined

test.before(() => {
  if (process.getuid?.() !== 0)
    throw new Error('the data-plane test needs root: kube-proxy and the pods run in network namespaces (run the cluster tier as root)')
})
test.afterEach.always(async (t) => {
  await killAllChildren()
  await current?.close({ keepLogs: !t.passed })
  if (!t.passed && current)
    process.stderr.write(`data-plane test failed: control-plane and kube-proxy logs kept in ${current.cluster.dir}\n`)
  current = undefined
})
test.after.always('no namespace of this run left, and no kube-proxy rule in the root namespace', (t) => {
  t.deepEqual(
    simNamespaces().filter((name) => name.startsWith(`dc-${process.pid}-`)),
    [],
  )
  t.deepEqual(kubeRulesInRootNamespace(), [])
})

/**
 * Lines of the root network namespace's rulesets that name kube-proxy's tables or chains: its nftables table, and
 * KUBE-... chains as iptables-nft (an nftables table too) or legacy iptables would list them. kube-proxy runs in
 * the node namespace; any such line here would outlive the run.
 */
function kubeRulesInRootNamespace(): string[] {
  const lines = (command: string[]) =>
    (spawnSync(command[0]!, command.slice(1), { encoding: 'utf8', env: { ...process.env, PATH: SYSTEM_PATH } }).stdout ?? '').split('\n')
  return [...lines(['nft', 'list', 'ruleset']), ...lines(['iptables-legacy-save']), ...lines(['ip6tables-legacy-save'])].filter((line) =>
    /kube-proxy|KUBE-/.test(line),
  )
}

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

for (const proxyMode of PROXY_MODES)
  test.serial(
    `${proxyMode} mode: a Service ClusterIP through kube-proxy reaches both pod namespaces; after the sidecar releases a deleted pod, new connections go only to the other`,
    async (t) => {
      await releasedPodGetsNoNewConnections(t, proxyMode)
    },
  )

async function releasedPodGetsNoNewConnections(t: ExecutionContext, proxyMode: ProxyMode) {
  const startedAt = performance.now()
  const d = (current = await startDataPlane({ proxyMode }))
  t.log(`control plane and kube-proxy (${proxyMode}) started in ${((performance.now() - startedAt) / 1_000).toFixed(1)} s`)
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
  // The mode is the one asked for: its ruleset is there, the other mode's is not; nothing of it in the root namespace.
  const nftables = listRules(d.nodeNs, 'nftables')
  const iptables = listRules(d.nodeNs, 'iptables')
  if (proxyMode === 'nftables') {
    t.true(nftables.ok && nftables.text.includes('chain services'), nftables.text)
    t.false(iptables.text.includes('KUBE-SERVICES'), iptables.text)
  } else {
    t.false(nftables.ok, nftables.text)
    t.regex(iptables.text, /^-A OUTPUT .*-j KUBE-SERVICES$/m)
    t.regex(iptables.text, new RegExp(`^-A KUBE-SEP-\\S+ .*-j DNAT .*--to-destination ${a.ip.replaceAll('.', '\\.')}:${APP_PORT}$`, 'm'))
  }
  t.deepEqual(kubeRulesInRootNamespace(), [])

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
}
