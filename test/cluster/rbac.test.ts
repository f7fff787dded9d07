/**
 * RBAC for real: the project's own manifests (kustomize build of manifests/example: ServiceAccount, Role,
 * RoleBinding, Service, and the Deployment whose pod template becomes the pod) applied to a real API server with
 * RBAC on. The sidecar logs in with a TokenRequest token bound to its pod, as the kubelet mounts it, so the API
 * server checks exactly what the Role grants; the system:masters admin is only the harness.
 */
import test from 'ava'
import { callHook, podIp, startPodSidecar, useCluster } from '../../sim/cluster/cluster-fixture.ts'
import { type KubeObject, waitFor } from '../../sim/cluster/kube-admin.ts'
import { createNamespace, createPod, deletePodGracefully, endpointsOf, setPodStatus } from '../../sim/cluster/kubelet.ts'
import { theOne, render } from '../../sim/cluster/manifests.ts'

const cluster = useCluster(test)

/** Applies manifests/example to a fresh namespace (the Role changed by `role`) and starts its pod. */
async function example(t: import('ava').ExecutionContext, name: string, role: (role: KubeObject) => KubeObject = (r) => r) {
  const c = cluster()
  const ns = `${name}-${process.pid}`
  await createNamespace(c.admin, ns)
  const objects = render('example')
  for (const object of objects) {
    if (object.kind === 'Deployment') continue // no deployment controller runs: its pod template is used below
    await c.admin.apply(object.kind === 'Role' ? role(structuredClone(object)) : (object as KubeObject), ns)
  }
  const template = theOne(objects, 'Deployment').spec.template
  const created = await createPod(c.admin, { name: 'example-app-1', namespace: ns, labels: template.metadata.labels, spec: template.spec })
  const ip = podIp()
  await setPodStatus(c.admin, ns, 'example-app-1', { ips: [ip], ready: true })
  const pod = { pod: created, name: 'example-app-1', namespace: ns, uid: created.metadata.uid!, ip }
  await waitFor("the example pod ready in its Service's slice", async () =>
    (await endpointsOf(c.admin, ns, pod.uid))[0]?.conditions.ready ? true : undefined,
  )
  const sidecar = await startPodSidecar(c, pod, {}, { serviceAccount: template.spec.serviceAccountName })
  t.teardown(() => sidecar.stop())
  return { c, ns, pod, sidecar }
}

test('with the shipped Role, the start-up access check passes and a drain completes on list and watch alone', async (t) => {
  const { c, ns, pod, sidecar } = await example(t, 'rbac-ok')
  const ok = await sidecar.waitForLog('kube_access_ok')
  t.like(ok, { resource: 'endpointslices.discovery.k8s.io', namespace: ns, via: 'review' })
  t.deepEqual(ok.verbs, ['list', 'watch'])
  t.false(sidecar.logs.some((l) => l.event === 'kube_access_denied'))

  await deletePodGracefully(c.admin, ns, pod.name, 60)
  const answer = await callHook(sidecar)
  t.is(answer.body.outcome, 'completed', JSON.stringify(answer.body))
  t.is(answer.body.phases.endpoints.mode, 'watch', 'watched, not fallen back to polling: watch is granted')
  t.false(
    sidecar.logs.some((l) => l.event === 'endpoint_watch_failed' || l.event === 'endpoint_list_failed'),
    'no request was refused',
  )
})

for (const verb of ['watch', 'list'] as const) {
  test(`with ${verb} removed from the Role, the documented one-line denial names it`, async (t) => {
    const { ns, sidecar } = await example(t, `rbac-no-${verb}`, (role) => {
      for (const rule of role.rules) rule.verbs = rule.verbs.filter((v: string) => v !== verb)
      return role
    })
    const denied = await sidecar.waitForLog('kube_access_denied')
    t.like(denied, { level: 'error', verb, resource: 'endpointslices.discovery.k8s.io', namespace: ns, via: 'review' })
    t.regex(
      String(denied.message),
      new RegExp(`^this service account may not ${verb} endpointslices\\.discovery\\.k8s\\.io in namespace ${ns}: `),
    )
    t.is(sidecar.logs.filter((l) => l.event.startsWith('kube_access_')).length, 1, 'one line')
  })
}
