/**
 * Injects drain-coordinator into one workload object (a node of a parsed YAML document): the sidecar, the app
 * container's preStop hook and a grace period that covers the drain budget. It decides everything first and
 * changes the object only when nothing stands in the way; every obstacle is reported, and a refused object is
 * left exactly as it was. An object that already has all of it is left alone, which makes inject idempotent.
 */
import { type Document, isMap, isScalar, isSeq, Pair, Scalar, type YAMLMap } from 'yaml'
import { type Config } from '../config.ts'
import { describeError } from '../errors.ts'
import {
  DEFAULT_GRACE_SECONDS,
  drainBudgetSeconds,
  isDrainHook,
  preStopHook,
  SIDECAR_NAME,
  sidecarConfig,
  sidecarContainer,
  type SidecarOptions,
} from './sidecar-spec.ts'

/** The workload kinds inject changes, and where each keeps its pod spec. Other objects pass through untouched. */
export const WORKLOADS: Readonly<Record<string, { apiVersion: string; podSpec: readonly string[] }>> = {
  Pod: { apiVersion: 'v1', podSpec: ['spec'] },
  Deployment: { apiVersion: 'apps/v1', podSpec: ['spec', 'template', 'spec'] },
  StatefulSet: { apiVersion: 'apps/v1', podSpec: ['spec', 'template', 'spec'] },
  DaemonSet: { apiVersion: 'apps/v1', podSpec: ['spec', 'template', 'spec'] },
  ReplicaSet: { apiVersion: 'apps/v1', podSpec: ['spec', 'template', 'spec'] },
  Job: { apiVersion: 'batch/v1', podSpec: ['spec', 'template', 'spec'] },
  CronJob: { apiVersion: 'batch/v1', podSpec: ['spec', 'jobTemplate', 'spec', 'template', 'spec'] },
}

/** An object annotated with this, set to "false", is left alone (as the kustomize components do). */
export const OPT_OUT_ANNOTATION = 'drain-coordinator/inject'

export type WorkloadOptions = SidecarOptions & {
  /** Names that mark the app container where a pod has several. */
  containers: readonly string[]
  /** Raise a terminationGracePeriodSeconds set shorter than the drain budget instead of refusing. */
  raiseGrace: boolean
  /** `Kind/name` of objects to leave alone. */
  skip: readonly string[]
}

export type WorkloadResult =
  | { status: 'not-a-workload' | 'skipped' }
  | { status: 'refused'; refusals: string[] }
  | { status: 'injected' | 'unchanged'; namespace: string | undefined; serviceAccount: string }

type Container = { name?: unknown; lifecycle?: { preStop?: unknown } } & Record<string, unknown>
type PodSpec = {
  containers?: unknown
  initContainers?: unknown
  terminationGracePeriodSeconds?: unknown
  restartPolicy?: unknown
  serviceAccountName?: unknown
}

export function injectWorkload(node: YAMLMap, doc: Document, options: WorkloadOptions): WorkloadResult {
  const object = node.toJSON() as {
    apiVersion?: unknown
    kind?: unknown
    metadata?: { name?: unknown; namespace?: unknown; annotations?: Record<string, unknown> }
  }
  const workload = typeof object.kind === 'string' ? WORKLOADS[object.kind] : undefined
  if (workload === undefined || object.apiVersion !== workload.apiVersion) return { status: 'not-a-workload' }
  const name = String(object.metadata?.name ?? '')
  const namespace = typeof object.metadata?.namespace === 'string' ? object.metadata.namespace : undefined
  if (object.metadata?.annotations?.[OPT_OUT_ANNOTATION] === 'false') return { status: 'skipped' }
  if (options.skip.some((entry) => entry.toLowerCase() === `${object.kind}/${name}`.toLowerCase())) return { status: 'skipped' }

  const label = `${object.kind}/${name}${namespace === undefined ? '' : ` (namespace ${namespace})`}`
  const line = (reason: string, container?: string) => `${label}${container === undefined ? '' : `, container ${container}`}: ${reason}`
  const refuse = (reason: string, container?: string): WorkloadResult => ({ status: 'refused', refusals: [line(reason, container)] })

  const specNode = node.getIn(workload.podSpec)
  const spec = walk(object, workload.podSpec) as PodSpec | undefined
  const containers = spec?.containers
  if (
    !isMap(specNode) ||
    !Array.isArray(containers) ||
    containers.length === 0 ||
    !containers.every((c: Container) => typeof c?.name === 'string')
  ) {
    return refuse(`no pod spec with named containers at ${workload.podSpec.join('.')}`)
  }
  const initContainers: Container[] = Array.isArray(spec!.initContainers) ? spec!.initContainers : []
  const existing = [...initContainers, ...containers].find((c: Container) => c?.name === SIDECAR_NAME) as Container | undefined

  // The budget follows the sidecar that will run: the one already there, or the one inject adds.
  let config: Config
  try {
    config = sidecarConfig(existing === undefined ? options.env : literalEnv(existing), { strict: false })
  } catch (error) {
    return refuse(`its env is not valid: ${describeError(error)}`, SIDECAR_NAME)
  }

  const refusals: string[] = []
  const candidates = (containers as Container[]).filter((c) => c.name !== SIDECAR_NAME)
  const named = candidates.filter((c) => options.containers.includes(c.name as string))
  const app = named.length === 1 ? named[0] : named.length === 0 && candidates.length === 1 ? candidates[0] : undefined
  if (app === undefined) {
    const names = (named.length > 1 ? named : candidates).map((c) => c.name).join(', ')
    refusals.push(
      line(
        candidates.length === 0
          ? 'no app container besides the sidecar'
          : `${named.length > 1 ? named.length : candidates.length} candidate app containers (${names}): name the one that serves traffic with --container NAME`,
      ),
    )
  }
  const preStop = app?.lifecycle?.preStop
  const hookNeeded = app !== undefined && preStop === undefined
  if (app !== undefined && preStop !== undefined && !isDrainHook(preStop, config.port)) {
    refusals.push(
      line(
        `already has a preStop hook (${Object.keys(preStop as object).join(', ') || 'empty'}); inject does not replace it: remove it (the sidecar's hook then delays SIGTERM instead) or leave this object out with --skip ${object.kind}/${name}`,
        String(app.name),
      ),
    )
  }

  const budget = drainBudgetSeconds(config)
  const grace = spec!.terminationGracePeriodSeconds
  let setGrace = false
  if (grace === undefined || grace === null) {
    setGrace = DEFAULT_GRACE_SECONDS < budget
  } else if (typeof grace !== 'number' || !Number.isInteger(grace) || grace < 0) {
    refusals.push(line(`terminationGracePeriodSeconds ${JSON.stringify(grace)} is not a whole number of seconds`))
  } else if (grace < budget) {
    if (options.raiseGrace) setGrace = true
    else
      refusals.push(
        line(
          `terminationGracePeriodSeconds ${grace} is shorter than the drain budget, ${budgetText(config, budget)}: raise it to ${budget} or more, or pass --raise-grace`,
        ),
      )
  }

  const restartPolicy = spec!.restartPolicy ?? 'Always'
  if (existing === undefined && !options.native && restartPolicy !== 'Always') {
    refusals.push(
      line(
        `restartPolicy ${String(restartPolicy)}: a classic sidecar never exits, so the pod would never complete; use the native sidecar (no --classic, Kubernetes 1.29+)`,
      ),
    )
  }
  if (refusals.length > 0) return { status: 'refused', refusals }

  const serviceAccount = typeof spec!.serviceAccountName === 'string' ? spec!.serviceAccountName : 'default'
  if (existing !== undefined && !hookNeeded && !setGrace) return { status: 'unchanged', namespace, serviceAccount }

  if (existing === undefined) {
    const sidecar = doc.createNode(sidecarContainer(options)) as YAMLMap
    sidecar.commentBefore = ` Added by drain-coordinator inject: holds the preStop hook of ${String(app!.name)} until this pod's endpoint is gone.`
    appendTo(specNode, options.native ? 'initContainers' : 'containers', sidecar, doc)
  }
  if (hookNeeded) {
    const appNode = (specNode.get('containers') as { items: unknown[] }).items.find(
      (c) => isMap(c) && c.get('name') === app!.name,
    ) as YAMLMap
    const lifecycle = appNode.get('lifecycle')
    if (isMap(lifecycle)) lifecycle.set('preStop', doc.createNode(preStopHook(config.port)))
    else appNode.set('lifecycle', doc.createNode({ preStop: preStopHook(config.port) }))
  }
  if (setGrace) {
    const current = specNode.get('terminationGracePeriodSeconds', true)
    // Changing the scalar in place keeps a comment on its line.
    if (isScalar(current)) current.value = budget
    else insertBefore(specNode, 'containers', 'terminationGracePeriodSeconds', new Scalar(budget))
  }
  return { status: 'injected', namespace, serviceAccount }
}

export function budgetText(config: Pick<Config, 'timeoutMs' | 'appReserveMs'>, budget: number): string {
  return `${budget}s (DRAIN_TIMEOUT ${config.timeoutMs / 1_000}s + DRAIN_APP_RESERVE ${config.appReserveMs / 1_000}s for the app after SIGTERM)`
}

function walk(value: unknown, path: readonly string[]): unknown {
  return path.reduce<unknown>(
    (at, key) => (at !== null && typeof at === 'object' ? (at as Record<string, unknown>)[key] : undefined),
    value,
  )
}

/** The literal `value`s of a container's env (Downward API and other `valueFrom` entries have none). */
function literalEnv(container: Container): Record<string, string> {
  const env = Array.isArray(container.env) ? (container.env as { name?: unknown; value?: unknown }[]) : []
  return Object.fromEntries(env.filter((v) => typeof v?.name === 'string' && typeof v.value === 'string').map((v) => [v.name, v.value]))
}

function appendTo(spec: YAMLMap, key: string, item: YAMLMap, doc: Document): void {
  const list = spec.get(key)
  if (isSeq(list)) list.items.push(item)
  else {
    const seq = doc.createNode([]) as { items: unknown[] }
    seq.items.push(item)
    if (list === undefined || list === null) insertBefore(spec, 'containers', key, seq)
    else spec.set(key, seq)
  }
}

/** Adds a key just before another (a pod spec reads better with initContainers before containers). */
function insertBefore(map: YAMLMap, before: string, key: string, value: unknown): void {
  const index = map.items.findIndex((pair) => (isScalar(pair.key) ? pair.key.value : pair.key) === before)
  const pair = new Pair(new Scalar(key), value)
  if (index < 0) map.items.push(pair as never)
  else map.items.splice(index, 0, pair as never)
}
