/**
 * Renders the kustomizations under manifests/ with the real kustomize binary and validates every object with
 * kubernetes-models (validators compiled from the Kubernetes OpenAPI schema; the prometheus-operator package
 * for PodMonitor and PrometheusRule). kustomize is built from its Go module by scripts/tools.mjs (the test command does it).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor'
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule'
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { ReplicaSet } from 'kubernetes-models/apps/v1/ReplicaSet'
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet'
import { CronJob } from 'kubernetes-models/batch/v1/CronJob'
import { Job } from 'kubernetes-models/batch/v1/Job'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role'
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Pod } from 'kubernetes-models/v1/Pod'
import { Secret } from 'kubernetes-models/v1/Secret'
import { Service } from 'kubernetes-models/v1/Service'
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount'
import { YAML } from 'zx'
import { toolBinary } from '../../scripts/tools.mjs'

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const MANIFESTS = join(REPO_ROOT, 'manifests')
/** The Kubernetes version whose OpenAPI schema kubernetes-models 5.1.0 was generated from. */
export const KUBERNETES_SCHEMA_VERSION = '1.36'

// Loosely typed on purpose: tests walk rendered YAML, and the validators below are what checks the shapes.
export type K8sObject = {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }
} & Record<string, any>

type Model = new (data: never) => { validate(): void }
const MODELS: Record<string, Model> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'v1/Secret': Secret,
  'v1/ConfigMap': ConfigMap,
  'v1/Pod': Pod,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/DaemonSet': DaemonSet,
  'apps/v1/ReplicaSet': ReplicaSet,
  'batch/v1/Job': Job,
  'batch/v1/CronJob': CronJob,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
}

/** Validates one object against its schema; throws with the validator's messages, or when no schema is known. A List's items each. */
export function validateObject(object: K8sObject): void {
  if (object.apiVersion === 'v1' && object.kind === 'List') {
    for (const item of object.items as K8sObject[]) validateObject(item)
    return
  }
  const Model = MODELS[`${object.apiVersion}/${object.kind}`]
  if (Model === undefined) throw new Error(`no schema registered for ${object.apiVersion} ${object.kind} (${object.metadata?.name})`)
  new Model(object as never).validate()
}

/** Every directory under manifests/ holding a kustomization.yaml, split into Kustomizations and Components. */
export function kustomizationDirs(): { kustomizations: string[]; components: string[] } {
  const kustomizations: string[] = []
  const components: string[] = []
  const walk = (dir: string) => {
    const file = join(dir, 'kustomization.yaml')
    if (existsSync(file)) {
      const kind = (YAML.parse(readFileSync(file, 'utf8')) as { kind?: string }).kind
      ;(kind === 'Component' ? components : kustomizations).push(relative(MANIFESTS, dir))
    }
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry)
      if (statSync(path).isDirectory()) walk(path)
    }
  }
  walk(MANIFESTS)
  return { kustomizations: kustomizations.sort(), components: components.sort() }
}

const rendered = new Map<string, K8sObject[]>()

/** `kustomize build manifests/<dir>`, parsed. */
export function render(dir: string): K8sObject[] {
  let objects = rendered.get(dir)
  if (objects === undefined) {
    let text: string
    try {
      text = execFileSync(toolBinary('kustomize'), ['build', join(MANIFESTS, dir)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    } catch (error) {
      const e = error as { stderr?: string }
      throw new Error(`kustomize build ${dir} failed: ${e.stderr ?? String(error)}`)
    }
    objects = YAML.parseAllDocuments(text)
      .map((doc) => doc.toJSON() as K8sObject)
      .filter((o) => o !== null)
    rendered.set(dir, objects)
  }
  return objects
}

export function find(objects: K8sObject[], kind: string, name?: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name))
}

/** The one object of that kind (and name) in `objects`; throws when there is none or more than one. */
export function theOne(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = find(objects, kind, name)
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`)
  return found[0]!
}

export type Container = K8sObject['spec']
/** The drain-coordinator container of a pod template, and whether it is a native sidecar (an init container). */
export function sidecarOf(deployment: K8sObject): { container: Container; native: boolean } | undefined {
  const spec = deployment.spec.template.spec
  const init = (spec.initContainers ?? []).find((c: Container) => c.name === 'drain-coordinator')
  if (init) return { container: init, native: true }
  const regular = (spec.containers ?? []).find((c: Container) => c.name === 'drain-coordinator')
  return regular ? { container: regular, native: false } : undefined
}
