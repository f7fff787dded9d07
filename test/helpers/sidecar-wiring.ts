/**
 * Cross-checks of a rendered pod with drain-coordinator against the sidecar itself: the env goes through
 * parseConfig (src/config.ts), the hook and probe paths are requested from the sidecar's real router
 * (src/server.ts), ports, grace period, RBAC and hardening are compared. Shared by the manifest and component tests.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'
import { Registry } from 'prom-client'
import { parseConfig, type Config } from '../../src/config.ts'
import { silentLogger } from '../../src/log.ts'
import { createMetrics } from '../../src/metrics.ts'
import { createServerApp, type ServerDeps } from '../../src/server.ts'
import { type Container, find, type K8sObject, theOne, REPO_ROOT, sidecarOf } from '../../sim/cluster/manifests.ts'

export const PKG = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }

/** The sidecar's HTTP app with inert dependencies: only its routing is exercised. */
export function sidecarRoutes() {
  const deps: ServerDeps = {
    coordinator: { state: 'serving', start: async () => ({ outcome: 'completed' }) } as unknown as ServerDeps['coordinator'],
    readiness: async () => ({ ready: true, reason: 'serving' }),
    metrics: createMetrics(new Registry(), { version: PKG.version }),
    log: silentLogger,
    hookToken: undefined,
  }
  return createServerApp(deps)
}

/** What kubelet would put in the container's environment, Downward API values included. */
function containerEnv(container: Container, pod: { name: string; namespace: string; uid: string; ips: string }): Record<string, string> {
  const env: Record<string, string> = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }
  const downward: Record<string, string> = {
    'metadata.name': pod.name,
    'metadata.namespace': pod.namespace,
    'metadata.uid': pod.uid,
    'status.podIPs': pod.ips,
    'status.hostIPs': '10.0.5.12,fd00:5::12',
    'status.hostIP': '10.0.5.12',
  }
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
export function configOf(container: Container): { config: Config; read: Set<string> } {
  const env = containerEnv(container, {
    name: 'web-7d9f-abcde',
    namespace: 'shop',
    uid: '3f0c2a47-6d0e-4c55-9a43-2b1f0e6c9d11',
    ips: '10.244.1.7,fd00:10:244:1::7',
  })
  const read = new Set<string>()
  const recording = new Proxy(env, {
    get(target, key) {
      if (typeof key === 'string') read.add(key)
      return Reflect.get(target, key)
    },
  })
  return { config: parseConfig(recording), read }
}

export function resolvePort(port: number | string, container: Container): number {
  if (typeof port === 'number') return port
  const named = (container.ports ?? []).find((p: { name?: string }) => p.name === port)
  if (!named) throw new Error(`container ${container.name} has no port named ${port}`)
  return named.containerPort
}

/** Every Deployment of the render that runs the sidecar is wired to it as the sidecar expects. */
export async function checkSidecarWiring(t: ExecutionContext, objects: K8sObject[], native: boolean): Promise<void> {
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
    const fieldPaths = Object.fromEntries(
      sidecar.container.env.filter((v: Container) => v.valueFrom).map((v: Container) => [v.name, v.valueFrom.fieldRef.fieldPath]),
    )
    t.deepEqual(fieldPaths, {
      POD_NAME: 'metadata.name',
      POD_NAMESPACE: 'metadata.namespace',
      POD_UID: 'metadata.uid',
      POD_IP: 'status.podIPs',
      HOST_IP: native ? 'status.hostIPs' : 'status.hostIP',
    })
    // status.hostIPs needs Kubernetes 1.29, as native sidecars do; the classic variant runs on older clusters.
    t.deepEqual(config.hostIps, native ? ['10.0.5.12', 'fd00:5::12'] : ['10.0.5.12'], "HOST_IP from the Downward API: the node's addresses")
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
      t.true(
        (app.ports ?? []).some((p: Container) => p.containerPort === Number(upstream.port)),
        'the upstream is a port of the app container',
      )
    }

    // Grace period: the hook is held up to DRAIN_TIMEOUT, and the app still needs time after SIGTERM.
    const grace = pod.terminationGracePeriodSeconds ?? 30
    t.true(grace > config.timeoutMs / 1_000, `terminationGracePeriodSeconds ${grace} > DRAIN_TIMEOUT ${config.timeoutMs / 1_000}s`)

    // RBAC: the Role is bound to the ServiceAccount the pod runs as, and that ServiceAccount is in the build.
    const binding = theOne(objects, 'RoleBinding')
    t.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: theOne(objects, 'Role').metadata.name })
    t.truthy(pod.serviceAccountName, 'the pod names its ServiceAccount')
    t.deepEqual(
      binding.subjects.map((s: Container) => ({ kind: s.kind, name: s.name, namespace: s.namespace ?? binding.metadata.namespace })),
      [{ kind: 'ServiceAccount', name: pod.serviceAccountName, namespace: deployment.metadata.namespace }],
    )
    t.is(theOne(objects, 'ServiceAccount', pod.serviceAccountName).metadata.namespace, deployment.metadata.namespace)

    // Hardened, and as the image's numeric user.
    const security = sidecar.container.securityContext
    t.like(security, {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    })
    t.truthy(sidecar.container.resources.requests.memory)
    t.truthy(sidecar.container.resources.limits.memory)
    t.is(sidecar.container.image, `drain-coordinator:${PKG.version}`, 'the image tag is the package version')
  }
}
