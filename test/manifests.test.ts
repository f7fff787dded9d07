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
import { Registry } from 'prom-client'
import { YAML } from 'zx'
import { parseConfig, type Config } from '../src/config.ts'
import { HOOK_TOKEN_HEADER } from '../src/hook-auth.ts'
import { silentLogger } from '../src/log.ts'
import { createMetrics } from '../src/metrics.ts'
import { createServerApp, type ServerDeps } from '../src/server.ts'
import {
  type Container,
  find,
  type K8sObject,
  KUBERNETES_SCHEMA_VERSION,
  kustomizationDirs,
  MANIFESTS,
  only,
  REPO_ROOT,
  render,
  sidecarOf,
  validateObject,
} from './helpers/manifests.ts'

const PKG = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
const { kustomizations, components } = kustomizationDirs()

/** Kustomizations that run the sidecar next to an app, and whether it is a native sidecar there. */
const WITH_SIDECAR: Record<string, { native: boolean }> = {
  example: { native: true },
  'examples/adopt-component': { native: true },
  'examples/adopt-component-serviceaccount': { native: true },
  'overlays/classic-sidecar': { native: false },
  'overlays/istio': { native: true },
  'overlays/network-policy': { native: true },
  'overlays/hook-token': { native: true },
  'overlays/scrape-annotations': { native: true },
}

/** The sidecar's HTTP app with inert dependencies: only its routing is exercised. */
function sidecarRoutes() {
  const deps: ServerDeps = {
    coordinator: { state: 'serving', start: async () => ({ outcome: 'completed' }) } as unknown as ServerDeps['coordinator'],
    readiness: async () => ({ ready: true, reason: 'serving' }),
    metrics: createMetrics(new Registry(), { version: PKG.version, processMetrics: false }),
    log: silentLogger,
    hookToken: undefined,
  }
  return createServerApp(deps)
}

/** What kubelet would put in the container's environment, Downward API values included. */
function containerEnv(container: Container, pod: { name: string; namespace: string; uid: string; ips: string }): Record<string, string> {
  const env: Record<string, string> = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }
  const downward: Record<string, string> = { 'metadata.name': pod.name, 'metadata.namespace': pod.namespace, 'metadata.uid': pod.uid, 'status.podIPs': pod.ips, 'status.hostIPs': '10.0.5.12,fd00:5::12', 'status.hostIP': '10.0.5.12' }
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) env[variable.name] = variable.value
    else if (variable.valueFrom?.fieldRef) {
      const value = downward[variable.valueFrom.fieldRef.fieldPath]
      if (value === undefined) throw new Error(`${variable.name}: unexpected fieldRef ${variable.valueFrom.fieldRef.fieldPath}`)
      env[variable.name] = value
    } else throw new Error(`${variable.name}: unsupported valueFrom ${JSON.stringify(variable.valueFrom)}`)
  }
  return env
}

/** parseConfig on the container's env, and the names of every variable parseConfig looked at. */
function configOf(container: Container): { config: Config; read: Set<string> } {
  const env = containerEnv(container, { name: 'web-7d9f-abcde', namespace: 'shop', uid: '3f0c2a47-6d0e-4c55-9a43-2b1f0e6c9d11', ips: '10.244.1.7,fd00:10:244:1::7' })
  const read = new Set<string>()
  const recording = new Proxy(env, {
    get(target, key) {
      if (typeof key === 'string') read.add(key)
      return Reflect.get(target, key)
    },
  })
  return { config: parseConfig(recording), read }
}

function resolvePort(port: number | string, container: Container): number {
  if (typeof port === 'number') return port
  const named = (container.ports ?? []).find((p: { name?: string }) => p.name === port)
  if (!named) throw new Error(`container ${container.name} has no port named ${port}`)
  return named.containerPort
}

test('the manifest tree holds the kustomizations these tests know about', (t) => {
  t.deepEqual(components, ['components/drain-coordinator', 'components/drain-coordinator-serviceaccount', 'components/drain-coordinator-sidecar'])
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
  const deployment = structuredClone(only(render('example'), 'Deployment'))
  deployment.spec.template.spec.containers[0].ports[0].containerPort = '8080'
  t.throws(() => validateObject(deployment), { message: /containerPort must be integer/ })
  const noSelector = structuredClone(only(render('example'), 'Deployment'))
  delete noSelector.spec.selector
  t.throws(() => validateObject(noSelector), { message: /selector/ })
  t.throws(() => validateObject({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }), { message: /no schema/ })
})

test('the Role grants exactly get, list and watch on discovery.k8s.io EndpointSlices, get on pods and create on events, bound to the ServiceAccount', (t) => {
  const objects = render('base')
  const role = only(objects, 'Role')
  t.deepEqual(role.rules, [
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ])
  const binding = only(objects, 'RoleBinding')
  const account = only(objects, 'ServiceAccount')
  t.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name })
  t.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: account.metadata.name }])
})

for (const [dir, { native }] of Object.entries(WITH_SIDECAR)) {
  test(`${dir}: the hook, the probes and the env match what the sidecar serves and reads`, async (t) => {
    const objects = render(dir)
    const routes = sidecarRoutes()
    const deployments = find(objects, 'Deployment').filter((d) => sidecarOf(d) !== undefined)
    t.true(deployments.length > 0, 'a Deployment with the sidecar')
    for (const deployment of deployments) {
      const pod = deployment.spec.template.spec
      const sidecar = sidecarOf(deployment)!
      t.is(sidecar.native, native, 'native sidecar (init container) or classic (regular container)')
      if (native) t.is(sidecar.container.restartPolicy, 'Always')
      else t.is(sidecar.container.restartPolicy, undefined)

      // Every variable the manifest sets is one the sidecar reads, and together they form a valid configuration.
      const { config, read } = configOf(sidecar.container)
      for (const variable of sidecar.container.env) t.true(read.has(variable.name), `${variable.name} is read by parseConfig`)
      const fieldPaths = Object.fromEntries(sidecar.container.env.filter((v: Container) => v.valueFrom).map((v: Container) => [v.name, v.valueFrom.fieldRef.fieldPath]))
      t.deepEqual(fieldPaths, { POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace', POD_UID: 'metadata.uid', POD_IP: 'status.podIPs', HOST_IP: native ? 'status.hostIPs' : 'status.hostIP' })
      // status.hostIPs needs Kubernetes 1.29, as native sidecars do; the classic variant runs on older clusters.
      t.deepEqual(config.hostIps, native ? ['10.0.5.12', 'fd00:5::12'] : ['10.0.5.12'], 'HOST_IP from the Downward API: the node\'s addresses')
      t.deepEqual(config.pod.ips, ['10.244.1.7', 'fd00:10:244:1::7'], 'POD_IP from status.podIPs: every address of a dual-stack pod')
      t.truthy(config.kube, 'the in-cluster API server is used')

      // The sidecar listens where its container port and its own probes say.
      t.is(resolvePort('drain', sidecar.container), config.port)
      for (const probe of ['startupProbe', 'livenessProbe'] as const) {
        const httpGet = sidecar.container[probe].httpGet
        t.is(resolvePort(httpGet.port, sidecar.container), config.port, `${probe} port`)
        t.is((await routes.request(httpGet.path)).status, 200, `${probe} ${httpGet.path}`)
      }

      // The app's preStop hook goes to the sidecar's hook route (GET, as kubelet sends it).
      const hooked = pod.containers.filter((c: Container) => c.lifecycle?.preStop?.httpGet)
      t.is(hooked.length, 1, 'exactly one container has the httpGet preStop hook')
      const app = hooked[0]
      t.not(app.name, 'drain-coordinator')
      const hook = app.lifecycle.preStop.httpGet
      t.is(hook.port, config.port, 'hook port (numeric: a named port would be looked up in the app container)')
      t.is(hook.host, undefined, 'the hook goes to the pod IP, where the sidecar listens')
      const answer = await routes.request(hook.path, { method: 'GET' })
      t.is(answer.status, 200, `GET ${hook.path}`)
      t.is(((await answer.json()) as { outcome?: string }).outcome, 'completed')

      // A readiness probe pointing at the sidecar must hit /ready, and the sidecar must then know the app's own readiness URL.
      const probe = app.readinessProbe?.httpGet
      if (probe && probe.port === config.port) {
        t.is((await routes.request(probe.path)).status, 200, `readinessProbe ${probe.path}`)
        t.is(probe.path, '/ready')
        t.truthy(config.readinessUpstream, 'DRAIN_READINESS_UPSTREAM is set')
        const upstream = new URL(config.readinessUpstream!)
        t.is(upstream.hostname, '127.0.0.1')
        t.true((app.ports ?? []).some((p: Container) => p.containerPort === Number(upstream.port)), 'the upstream is a port of the app container')
      }

      // Grace period: the hook is held up to DRAIN_TIMEOUT, and the app still needs time after SIGTERM.
      const grace = pod.terminationGracePeriodSeconds ?? 30
      t.true(grace > config.timeoutMs / 1_000, `terminationGracePeriodSeconds ${grace} > DRAIN_TIMEOUT ${config.timeoutMs / 1_000}s`)

      // RBAC: the Role is bound to the ServiceAccount the pod runs as, and that ServiceAccount is in the build.
      const binding = only(objects, 'RoleBinding')
      t.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: only(objects, 'Role').metadata.name })
      t.truthy(pod.serviceAccountName, 'the pod names its ServiceAccount')
      t.deepEqual(
        binding.subjects.map((s: Container) => ({ kind: s.kind, name: s.name, namespace: s.namespace ?? binding.metadata.namespace })),
        [{ kind: 'ServiceAccount', name: pod.serviceAccountName, namespace: deployment.metadata.namespace }],
      )
      t.is(only(objects, 'ServiceAccount', pod.serviceAccountName).metadata.namespace, deployment.metadata.namespace)

      // Hardened, and as the image's numeric user.
      const security = sidecar.container.securityContext
      t.like(security, { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } })
      t.truthy(sidecar.container.resources.requests.memory)
      t.truthy(sidecar.container.resources.limits.memory)
      t.is(sidecar.container.image, `drain-coordinator:${PKG.version}`, 'the image tag is the package version')
    }
  })
}

test('the component adds the same sidecar as the example, minus the app-specific readiness upstream, and keeps what the app had', (t) => {
  const example = sidecarOf(only(render('example'), 'Deployment'))!.container
  const expected = { ...example, env: example.env.filter((v: Container) => v.name !== 'DRAIN_READINESS_UPSTREAM') }
  // The user's own Deployment, ServiceAccount and Service with namePrefix shop- and namespace shop.
  const objects = render('examples/adopt-component')
  const user = YAML.parseAllDocuments(readFileSync(join(MANIFESTS, 'examples/adopt-component/deployment.yaml'), 'utf8')).map((d) => d.toJSON() as K8sObject)
  const before = only(user, 'Deployment').spec.template.spec
  const adopted = only(objects, 'Deployment', 'shop-web')
  const pod = adopted.spec.template.spec
  t.is(adopted.metadata.namespace, 'shop')
  t.deepEqual(sidecarOf(adopted)!.container, expected, 'the sidecar is added')
  // The app's identity stays: its own ServiceAccount (renamed by namePrefix, with its IAM annotation), not ours.
  t.is(before.serviceAccountName, 'web')
  t.is(pod.serviceAccountName, 'shop-web')
  const account = only(objects, 'ServiceAccount')
  t.is(account.metadata.name, 'shop-web')
  t.is(account.metadata.annotations?.['eks.amazonaws.com/role-arn'], 'arn:aws:iam::123456789012:role/web')
  // The Role is bound to that ServiceAccount, in the same namespace.
  const binding = only(objects, 'RoleBinding')
  t.is(binding.metadata.namespace, 'shop')
  t.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'shop-drain-coordinator' })
  t.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'shop-web', namespace: 'shop' }])
  // The app's init container is still there, unchanged, next to the sidecar.
  t.deepEqual(pod.initContainers.map((c: Container) => c.name).sort(), ['drain-coordinator', 'migrate'])
  t.deepEqual(pod.initContainers.find((c: Container) => c.name === 'migrate'), before.initContainers[0])
  // Only preStop is added to the app's lifecycle: its postStart hook stays.
  const app = pod.containers[0]
  t.is(app.name, 'web')
  t.deepEqual(app.lifecycle, { postStart: before.containers[0].lifecycle.postStart, preStop: { httpGet: { path: '/prestop', port: 8099 } } })
  t.deepEqual(app.readinessProbe, { httpGet: { path: '/readyz', port: 'http' } }, 'the app keeps its own readiness probe')
  t.deepEqual({ ...app, lifecycle: undefined }, { ...before.containers[0], lifecycle: undefined }, 'nothing else in the app container changes')
  t.is(pod.containers.length, 1)
})

test('the serviceaccount component assigns its own ServiceAccount to pods that had none, and skips opted-out Deployments', (t) => {
  const example = sidecarOf(only(render('example'), 'Deployment'))!.container
  const objects = render('examples/adopt-component-serviceaccount')
  const adopted = only(objects, 'Deployment', 'web')
  t.deepEqual(sidecarOf(adopted)!.container, { ...example, env: example.env.filter((v: Container) => v.name !== 'DRAIN_READINESS_UPSTREAM') })
  t.is(adopted.spec.template.spec.serviceAccountName, 'drain-coordinator')
  t.deepEqual(adopted.spec.template.spec.containers[0].lifecycle, { preStop: { httpGet: { path: '/prestop', port: 8099 } } })
  t.deepEqual(only(objects, 'RoleBinding').subjects, [{ kind: 'ServiceAccount', name: 'drain-coordinator' }])

  const optedOut = only(objects, 'Deployment', 'batch-worker')
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
    writeFileSync(join(dir, 'kustomization.yaml'), YAML.stringify({ resources: ['deployments.yaml'], components: [relative(dir, join(MANIFESTS, 'components/drain-coordinator'))] }))
    const text = execFileSync('kustomize', ['build', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
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
    spec: { selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name, image: 'app:1' }], ...spec } } },
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
  t.deepEqual(only(objects, 'RoleBinding').subjects, [{ kind: 'ServiceAccount', name: 'default' }])
  t.is(find(objects, 'ServiceAccount').length, 0, 'no unused drain-coordinator ServiceAccount')
  t.deepEqual(only(objects, 'Deployment').spec.template.spec.containers[0].lifecycle, { preStop: { httpGet: { path: '/prestop', port: 8099 } } })
})

test('istio: Envoy admin URL set, and the sidecar port excluded from inbound capture', (t) => {
  const deployment = only(render('overlays/istio'), 'Deployment')
  const { config } = configOf(sidecarOf(deployment)!.container)
  t.is(config.envoyAdminUrl, 'http://127.0.0.1:15000/')
  const excluded = deployment.spec.template.metadata.annotations['traffic.sidecar.istio.io/excludeInboundPorts'].split(',')
  t.true(excluded.includes(String(config.port)))
})

test('hook-token: the header kubelet sends is the token in the Secret the sidecar reads', (t) => {
  const objects = render('overlays/hook-token')
  const deployment = only(objects, 'Deployment')
  const sidecar = sidecarOf(deployment)!.container
  const { config } = configOf(sidecar)
  t.truthy(config.hookToken && 'file' in config.hookToken)
  const file = (config.hookToken as { file: string }).file
  const mount = sidecar.volumeMounts.find((m: Container) => file.startsWith(`${m.mountPath}/`))
  t.truthy(mount, 'DRAIN_HOOK_TOKEN_FILE is inside a volume mount')
  const volume = deployment.spec.template.spec.volumes.find((v: Container) => v.name === mount.name)
  const secret = only(objects, 'Secret', volume.secret.secretName)
  const token = secret.stringData[file.slice(mount.mountPath.length + 1)]
  t.truthy(token)
  t.notThrows(() => parseConfig({ DRAIN_HOOK_TOKEN: token }), 'the token is one the sidecar accepts')
  const app = deployment.spec.template.spec.containers.find((c: Container) => c.name === 'app')
  const headers = app.lifecycle.preStop.httpGet.httpHeaders
  t.deepEqual(headers.map((h: Container) => ({ name: h.name.toLowerCase(), value: h.value })), [{ name: HOOK_TOKEN_HEADER, value: token }])
})

test('network-policy: port 8099 only from Prometheus, the app port open, on the example pods', (t) => {
  const objects = render('overlays/network-policy')
  const deployment = only(objects, 'Deployment')
  const { config } = configOf(sidecarOf(deployment)!.container)
  const policy = only(objects, 'NetworkPolicy')
  t.like(deployment.spec.template.metadata.labels, policy.spec.podSelector.matchLabels)
  t.deepEqual(policy.spec.policyTypes, ['Ingress'])
  const sidecarRules = policy.spec.ingress.filter((r: Container) => r.ports.some((p: Container) => p.port === config.port))
  t.is(sidecarRules.length, 1)
  t.true(sidecarRules[0].from.length > 0, 'the sidecar port is not open to everyone')
  const appPort = deployment.spec.template.spec.containers[0].ports[0].containerPort
  t.true(policy.spec.ingress.some((r: Container) => r.from === undefined && r.ports.some((p: Container) => p.port === appPort)))
})

test('metrics discovery: the PodMonitor and the scrape annotations point at the port and path the sidecar serves', async (t) => {
  const routes = sidecarRoutes()
  const monitor = only(render('monitoring'), 'PodMonitor')
  const endpoint = monitor.spec.podMetricsEndpoints[0]
  const example = sidecarOf(only(render('example'), 'Deployment'))!.container
  const { config } = configOf(example)
  t.is(resolvePort(endpoint.port, example), config.port)
  const metrics = await routes.request(endpoint.path)
  t.is(metrics.status, 200)
  t.regex(await metrics.text(), /^drain_coordinator_build_info\{version="[^"]+"\} 1$/m)

  const annotated = only(render('overlays/scrape-annotations'), 'Deployment').spec.template.metadata.annotations
  t.is(annotated['prometheus.io/scrape'], 'true')
  t.is(Number(annotated['prometheus.io/port']), config.port)
  t.is(annotated['prometheus.io/path'], endpoint.path)
})

test('the Grafana dashboard ConfigMap carries the dashboard JSON file unchanged', (t) => {
  const configMap = only(render('monitoring'), 'ConfigMap')
  t.is(configMap.metadata.labels?.grafana_dashboard, '1')
  t.deepEqual(JSON.parse(configMap.data['drain-coordinator-dashboard.json']), JSON.parse(readFileSync(join(MANIFESTS, 'monitoring/grafana-dashboard.json'), 'utf8')))
})

for (const dir of Object.keys(WITH_SIDECAR)) {
  test(`${dir}: the grace period fits the hold and the app's reserve, with the pod's budget and without it`, (t) => {
    for (const deployment of find(render(dir), 'Deployment').filter((d) => sidecarOf(d) !== undefined)) {
      const graceMs = (deployment.spec.template.spec.terminationGracePeriodSeconds ?? 30) * 1_000
      const { config } = configOf(sidecarOf(deployment)!.container)
      // Without permission or a deletionTimestamp the hold is DRAIN_TIMEOUT: the app must still get its reserve.
      t.true(config.timeoutMs + config.appReserveMs <= graceMs, `${deployment.metadata.name}: DRAIN_TIMEOUT ${config.timeoutMs}ms + DRAIN_APP_RESERVE ${config.appReserveMs}ms > grace ${graceMs}ms`)
      // With the budget, the hold is what the grace period leaves: a whole settle must fit in it.
      t.true(graceMs - config.appReserveMs >= config.settleMs, `${deployment.metadata.name}: the budgeted hold is shorter than DRAIN_SETTLE`)
    }
  })
}
