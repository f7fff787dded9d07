/**
 * The Kubernetes manifests under manifests/: each kustomization renders with kustomize, every object validates
 * against the Kubernetes 1.36 OpenAPI schema, and what the manifests tell kubelet and the sidecar matches what
 * the sidecar serves (src/server.ts) and reads (src/config.ts).
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import test from 'ava'
import { YAML } from 'zx'
import { toolBinary } from '../scripts/tools.mjs'
import {
  type Container,
  find,
  type K8sObject,
  KUBERNETES_SCHEMA_VERSION,
  kustomizationDirs,
  MANIFESTS,
  theOne,
  render,
  sidecarOf,
  validateObject,
} from '../sim/cluster/manifests.ts'
import { checkSidecarWiring, configOf, resolvePort, sidecarRoutes } from './helpers/sidecar-wiring.ts'

const { kustomizations, components } = kustomizationDirs()

/** Kustomizations that run the sidecar next to an app, and whether it is a native sidecar there. */
const WITH_SIDECAR: Record<string, { native: boolean }> = {
  example: { native: true },
  'examples/adopt-component': { native: true },
  'examples/adopt-component-serviceaccount': { native: true },
  'examples/network-policy': { native: true },
}

test('the manifest tree holds the kustomizations these tests know about', (t) => {
  t.deepEqual(components, [
    'components/classic-sidecar',
    'components/drain-coordinator',
    'components/drain-coordinator-serviceaccount',
    'components/drain-coordinator-sidecar',
    'components/hook-token',
    'components/istio',
    'components/poll-mode',
    'components/scrape-annotations',
  ])
  for (const dir of Object.keys(WITH_SIDECAR)) t.true(kustomizations.includes(dir), dir)
  t.true(kustomizations.includes('base'))
  t.true(kustomizations.includes('monitoring'))
})

for (const dir of kustomizations) {
  test(`${dir} renders with kustomize and every object validates against the Kubernetes ${KUBERNETES_SCHEMA_VERSION} schema`, (t) => {
    const objects = render(dir)
    t.true(objects.length > 0)
    for (const object of objects) {
      t.notThrows(() => validateObject(object), `${object.kind} ${object.metadata.name} in ${dir}`)
    }
  })
}

test('the schema validator rejects what the API server would reject', (t) => {
  const deployment = structuredClone(theOne(render('example'), 'Deployment'))
  deployment.spec.template.spec.containers[0].ports[0].containerPort = '8080'
  t.throws(() => validateObject(deployment), { message: /containerPort must be integer/ })
  const noSelector = structuredClone(theOne(render('example'), 'Deployment'))
  delete noSelector.spec.selector
  t.throws(() => validateObject(noSelector), { message: /selector/ })
  t.throws(() => validateObject({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }), { message: /no schema/ })
})

test('the Role grants exactly get, list and watch on discovery.k8s.io EndpointSlices, get on pods and create on events, bound to the ServiceAccount', (t) => {
  const objects = render('base')
  const role = theOne(objects, 'Role')
  t.deepEqual(role.rules, [
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ])
  const binding = theOne(objects, 'RoleBinding')
  const account = theOne(objects, 'ServiceAccount')
  t.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name })
  t.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: account.metadata.name }])
})

for (const [dir, { native }] of Object.entries(WITH_SIDECAR)) {
  test(`${dir}: the hook, the probes and the env match what the sidecar serves and reads`, (t) =>
    checkSidecarWiring(t, render(dir), native))
}

test('the component adds the same sidecar as the example, minus the app-specific readiness upstream, and keeps what the app had', (t) => {
  const example = sidecarOf(theOne(render('example'), 'Deployment'))!.container
  const expected = { ...example, env: example.env.filter((v: Container) => v.name !== 'DRAIN_READINESS_UPSTREAM') }
  // The user's own Deployment, ServiceAccount and Service with namePrefix shop- and namespace shop.
  const objects = render('examples/adopt-component')
  const user = YAML.parseAllDocuments(readFileSync(join(MANIFESTS, 'examples/adopt-component/deployment.yaml'), 'utf8')).map(
    (d) => d.toJSON() as K8sObject,
  )
  const before = theOne(user, 'Deployment').spec.template.spec
  const adopted = theOne(objects, 'Deployment', 'shop-web')
  const pod = adopted.spec.template.spec
  t.is(adopted.metadata.namespace, 'shop')
  t.deepEqual(sidecarOf(adopted)!.container, expected, 'the sidecar is added')
  // The app's identity stays: its own ServiceAccount (renamed by namePrefix, with its IAM annotation), not ours.
  t.is(before.serviceAccountName, 'web')
  t.is(pod.serviceAccountName, 'shop-web')
  const account = theOne(objects, 'ServiceAccount')
  t.is(account.metadata.name, 'shop-web')
  t.is(account.metadata.annotations?.['eks.amazonaws.com/role-arn'], 'arn:aws:iam::123456789012:role/web')
  // The Role is bound to that ServiceAccount, in the same namespace.
  const binding = theOne(objects, 'RoleBinding')
  t.is(binding.metadata.namespace, 'shop')
  t.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'shop-drain-coordinator' })
  t.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'shop-web', namespace: 'shop' }])
  // The app's init container is still there, unchanged, next to the sidecar.
  t.deepEqual(pod.initContainers.map((c: Container) => c.name).sort(), ['drain-coordinator', 'migrate'])
  t.deepEqual(
    pod.initContainers.find((c: Container) => c.name === 'migrate'),
    before.initContainers[0],
  )
  // Only preStop is added to the app's lifecycle: its postStart hook stays.
  const app = pod.containers[0]
  t.is(app.name, 'web')
  t.deepEqual(app.lifecycle, {
    postStart: before.containers[0].lifecycle.postStart,
    preStop: { httpGet: { path: '/prestop', port: 8099 } },
  })
  t.deepEqual(app.readinessProbe, { httpGet: { path: '/readyz', port: 'http' } }, 'the app keeps its own readiness probe')
  t.deepEqual(
    { ...app, lifecycle: undefined },
    { ...before.containers[0], lifecycle: undefined },
    'nothing else in the app container changes',
  )
  t.is(pod.containers.length, 1)
})

test('the serviceaccount component assigns its own ServiceAccount to pods that had none, and skips opted-out Deployments', (t) => {
  const example = sidecarOf(theOne(render('example'), 'Deployment'))!.container
  const objects = render('examples/adopt-component-serviceaccount')
  const adopted = theOne(objects, 'Deployment', 'web')
  t.deepEqual(sidecarOf(adopted)!.container, {
    ...example,
    env: example.env.filter((v: Container) => v.name !== 'DRAIN_READINESS_UPSTREAM'),
  })
  t.is(adopted.spec.template.spec.serviceAccountName, 'drain-coordinator')
  t.deepEqual(adopted.spec.template.spec.containers[0].lifecycle, { preStop: { httpGet: { path: '/prestop', port: 8099 } } })
  t.deepEqual(theOne(objects, 'RoleBinding').subjects, [{ kind: 'ServiceAccount', name: 'drain-coordinator' }])

  const optedOut = theOne(objects, 'Deployment', 'batch-worker')
  t.is(sidecarOf(optedOut), undefined)
  t.is(optedOut.spec.template.spec.serviceAccountName, undefined)
  t.is(optedOut.spec.template.spec.containers[0].lifecycle, undefined)
  t.is(find(objects, 'Role').length, 1, 'the component brings the RBAC')
})

/** `kustomize build` of a throw-away kustomization using the component, with the given Deployments. */
function buildWithComponent(deployments: object[]): { ok: true; objects: K8sObject[] } | { ok: false; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'drain-coordinator-component-'))
  try {
    writeFileSync(join(dir, 'deployments.yaml'), deployments.map((d) => YAML.stringify(d)).join('---\n'))
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      YAML.stringify({ resources: ['deployments.yaml'], components: [relative(dir, join(MANIFESTS, 'components/drain-coordinator'))] }),
    )
    const text = execFileSync(toolBinary('kustomize'), ['build', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    return { ok: true, objects: YAML.parseAllDocuments(text).map((d) => d.toJSON() as K8sObject) }
  } catch (error) {
    return { ok: false, stderr: String((error as { stderr?: string }).stderr) }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

test('the component never guesses the ServiceAccount: no serviceAccountName, or several Deployments, fail the build', (t) => {
  const deployment = (name: string, spec: object) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name, image: 'app:1' }], ...spec } },
    },
  })
  const none = buildWithComponent([deployment('a', {})])
  t.false(none.ok)
  t.regex((none as { stderr: string }).stderr, /spec\.template\.spec\.serviceAccountName` is missing/)
  const several = buildWithComponent([deployment('a', { serviceAccountName: 'a' }), deployment('b', { serviceAccountName: 'b' })])
  t.false(several.ok)
  t.regex((several as { stderr: string }).stderr, /multiple matches/)
  // `default`, written out, is bound as such; a pod without a lifecycle gets one holding only the hook.
  const explicit = buildWithComponent([deployment('a', { serviceAccountName: 'default' })])
  t.true(explicit.ok)
  const objects = (explicit as { objects: K8sObject[] }).objects
  t.deepEqual(theOne(objects, 'RoleBinding').subjects, [{ kind: 'ServiceAccount', name: 'default' }])
  t.is(find(objects, 'ServiceAccount').length, 0, 'no unused drain-coordinator ServiceAccount')
  t.deepEqual(theOne(objects, 'Deployment').spec.template.spec.containers[0].lifecycle, {
    preStop: { httpGet: { path: '/prestop', port: 8099 } },
  })
})

test('network-policy: port 8099 only from Prometheus, the app port open, on the example pods', (t) => {
  const objects = render('examples/network-policy')
  const deployment = theOne(objects, 'Deployment')
  const { config } = configOf(sidecarOf(deployment)!.container)
  const policy = theOne(objects, 'NetworkPolicy')
  t.like(deployment.spec.template.metadata.labels, policy.spec.podSelector.matchLabels)
  t.deepEqual(policy.spec.policyTypes, ['Ingress'])
  const sidecarRules = policy.spec.ingress.filter((r: Container) => r.ports.some((p: Container) => p.port === config.port))
  t.is(sidecarRules.length, 1)
  t.true(sidecarRules[0].from.length > 0, 'the sidecar port is not open to everyone')
  const appPort = deployment.spec.template.spec.containers[0].ports[0].containerPort
  t.true(policy.spec.ingress.some((r: Container) => r.from === undefined && r.ports.some((p: Container) => p.port === appPort)))
})

test('metrics discovery: the PodMonitor points at the port and path the sidecar serves', async (t) => {
  const routes = sidecarRoutes()
  const monitor = theOne(render('monitoring'), 'PodMonitor')
  const endpoint = monitor.spec.podMetricsEndpoints[0]
  const example = sidecarOf(theOne(render('example'), 'Deployment'))!.container
  const { config } = configOf(example)
  t.is(resolvePort(endpoint.port, example), config.port)
  const metrics = await routes.request(endpoint.path)
  t.is(metrics.status, 200)
  t.regex(await metrics.text(), /^drain_coordinator_build_info\{version="[^"]+"\} 1$/m)
})

test('the Grafana dashboard ConfigMap carries the dashboard JSON file unchanged', (t) => {
  const configMap = theOne(render('monitoring'), 'ConfigMap')
  t.is(configMap.metadata.labels?.grafana_dashboard, '1')
  t.deepEqual(
    JSON.parse(configMap.data['drain-coordinator-dashboard.json']),
    JSON.parse(readFileSync(join(MANIFESTS, 'monitoring/grafana-dashboard.json'), 'utf8')),
  )
})

for (const dir of Object.keys(WITH_SIDECAR)) {
  test(`${dir}: the grace period fits the hold and the app's reserve, with the pod's budget and without it`, (t) => {
    for (const deployment of find(render(dir), 'Deployment').filter((d) => sidecarOf(d) !== undefined)) {
      const graceMs = (deployment.spec.template.spec.terminationGracePeriodSeconds ?? 30) * 1_000
      const { config } = configOf(sidecarOf(deployment)!.container)
      // Without permission or a deletionTimestamp the hold is DRAIN_TIMEOUT: the app must still get its reserve.
      t.true(
        config.timeoutMs + config.appReserveMs <= graceMs,
        `${deployment.metadata.name}: DRAIN_TIMEOUT ${config.timeoutMs}ms + DRAIN_APP_RESERVE ${config.appReserveMs}ms > grace ${graceMs}ms`,
      )
      // With the budget, the hold is what the grace period leaves: a whole settle must fit in it.
      t.true(
        graceMs - config.appReserveMs >= config.settleMs,
        `${deployment.metadata.name}: the budgeted hold is shorter than DRAIN_SETTLE`,
      )
    }
  })
}
