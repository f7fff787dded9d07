/**
 * What `drain-coordinator inject` adds to a pod, in one place: the sidecar container, the app's preStop hook, the
 * drain budget that the pod's terminationGracePeriodSeconds must cover, and the Role the sidecar needs. The same
 * objects are written out by hand in manifests/ (the example, the sidecar component, base's Role); the tests
 * render those with kustomize and require them to equal what is built here.
 */
import { type Config, type Env, parseConfig } from '../config.ts'
import { ConfigError } from '../errors.ts'
import { VERSION } from '../version.ts'

export const SIDECAR_NAME = 'drain-coordinator'
export const HOOK_PATH = '/prestop'
export const DEFAULT_IMAGE = `drain-coordinator:${VERSION}`

/** What the sidecar's env sets by default (the rest are the sidecar's own defaults, see config.ts). */
export const DEFAULT_ENV: Readonly<Record<string, string>> = Object.freeze({ DRAIN_TIMEOUT: '20s', DRAIN_SETTLE: '5s' })

/**
 * The grace period a pod needs, in whole seconds: the longest hold (DRAIN_TIMEOUT), then the time left for the app
 * after SIGTERM (DRAIN_APP_RESERVE). The sidecar itself caps its hold at the pod's deletionTimestamp minus
 * DRAIN_APP_RESERVE and ends its final-scrape wait before the kill, so a shorter grace period still works; it only
 * shortens the longest hold. With the defaults (20 s + 10 s) this is Kubernetes' default of 30 s.
 */
export function drainBudgetSeconds(config: Pick<Config, 'timeoutMs' | 'appReserveMs'>): number {
  return Math.ceil((config.timeoutMs + config.appReserveMs) / 1_000)
}

/** The Kubernetes default when a pod sets no terminationGracePeriodSeconds. */
export const DEFAULT_GRACE_SECONDS = 30

/** Variables inject refuses to set: the hook token needs a header in the hook and a Secret (see the hook-token component). */
const NOT_BY_INJECT = new Set(['DRAIN_HOOK_TOKEN', 'DRAIN_HOOK_TOKEN_FILE'])

/**
 * The sidecar's configuration from its literal env values (Downward API entries left out), through the sidecar's
 * own parser, so inject accepts exactly what the sidecar would. Throws a ConfigError naming a bad variable. Strict
 * (for what inject is asked to set): also one the sidecar does not read, or one inject must not set.
 */
export function sidecarConfig(env: Env, { strict }: { strict: boolean }): Config {
  const read = new Set<string>()
  const recording = new Proxy(env, {
    get(target, key) {
      if (typeof key === 'string') read.add(key)
      return Reflect.get(target, key)
    },
  })
  const config = parseConfig(recording)
  if (!strict) return config
  for (const [name, value = ''] of Object.entries(env)) {
    if (NOT_BY_INJECT.has(name))
      throw new ConfigError(name, '<redacted>', 'no hook token from inject: the hook must send it too; use manifests/components/hook-token')
    if (!name.startsWith('DRAIN_') || !read.has(name))
      throw new ConfigError(name, value, 'a DRAIN_* variable the sidecar reads (README, Configuration); POD_* come from the Downward API')
  }
  return config
}

type EnvVar = { name: string; value: string } | { name: string; valueFrom: { fieldRef: { fieldPath: string } } }

/** Downward API: who this pod is, to find its endpoint in the EndpointSlices, and the node it runs on. */
function downwardEnv(native: boolean): EnvVar[] {
  return [
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'POD_UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
    // Every address of the pod, comma-separated on a dual-stack pod (status.podIP is only the first).
    { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIPs' } } },
    // The node's addresses: kubelet's probes and hook calls come from them and are not traffic to the quiet gate.
    // status.hostIPs needs Kubernetes 1.29, as native sidecars do; a classic sidecar may run on older clusters.
    { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: native ? 'status.hostIPs' : 'status.hostIP' } } },
  ]
}

export type SidecarOptions = {
  image: string
  /** Native sidecar (an init container with restartPolicy Always, Kubernetes 1.29+) or a regular container. */
  native: boolean
  /** Literal env values, in order; validated with sidecarConfig. */
  env: Readonly<Record<string, string>>
}

/** The sidecar container, key for key as in manifests/components/drain-coordinator-sidecar/sidecar.yaml. */
export function sidecarContainer(options: SidecarOptions): Record<string, unknown> {
  const { port } = sidecarConfig(options.env, { strict: true })
  const probe = (periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path: '/healthz', port: 'drain' },
    periodSeconds,
    failureThreshold,
  })
  return {
    name: SIDECAR_NAME,
    image: options.image,
    ...(options.native ? { restartPolicy: 'Always' } : {}),
    ports: [{ name: 'drain', containerPort: port }],
    env: [...Object.entries(options.env).map(([name, value]) => ({ name, value })), ...downwardEnv(options.native)],
    // The app container starts only once the sidecar listens (native sidecar), so the hook has somewhere to go.
    startupProbe: probe(1, 30),
    // /healthz stays 200 during a drain: a liveness failure must never restart the sidecar mid-hold.
    livenessProbe: probe(10, 3),
    // Measured (README, Resources): 69 MiB idle, 99 MiB peak during a drain; limit at about twice the peak.
    resources: { requests: { cpu: '10m', memory: '96Mi' }, limits: { memory: '192Mi' } },
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  }
}

/** The app container's preStop hook. Numeric port: a named one would be looked up in the app's own ports. */
export function preStopHook(port: number): Record<string, unknown> {
  return { httpGet: { path: HOOK_PATH, port } }
}

/** Whether a preStop hook is already the one inject adds (headers, as the hook-token component sets, allowed). */
export function isDrainHook(preStop: unknown, port: number): boolean {
  const httpGet = (preStop as { httpGet?: { path?: unknown; port?: unknown; host?: unknown } } | null)?.httpGet
  return httpGet !== undefined && httpGet.path === HOOK_PATH && Number(httpGet.port) === port && httpGet.host === undefined
}

const RBAC_LABELS = { 'app.kubernetes.io/name': 'drain-coordinator', 'app.kubernetes.io/component': 'rbac' }

/**
 * The Role, as in manifests/base/role.yaml: the sidecar LISTs then WATCHes EndpointSlices in its namespace
 * (poll mode only LISTs; get is granted because the interface names get/list/watch), GETs its own Pod for the
 * deletionTimestamp that bounds its hold, and creates Events on it.
 */
export function role(namespace: string | undefined): Record<string, unknown> {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: SIDECAR_NAME, ...(namespace === undefined ? {} : { namespace }), labels: { ...RBAC_LABELS } },
    rules: [
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    ],
  }
}

/** Binds the Role to the pods' ServiceAccounts; a subject without a namespace means the binding's own. */
export function roleBinding(namespace: string | undefined, serviceAccounts: readonly string[]): Record<string, unknown> {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: SIDECAR_NAME, ...(namespace === undefined ? {} : { namespace }), labels: { ...RBAC_LABELS } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: SIDECAR_NAME },
    subjects: serviceAccounts.map((name) => ({ kind: 'ServiceAccount', name })),
  }
}
