/**
 * `drain-coordinator inject` without its command line: parsed streams in, the text to write and one line per
 * refusal out. With rbac, every namespace that gets (or already has) the sidecar also gets the Role and a
 * RoleBinding to the pods' ServiceAccounts, unless the input already holds them.
 */
import { type Document, isSeq, type YAMLMap } from 'yaml'
import { objectsOf, parseStream, printStreams, type Source, type Stream } from './documents.ts'
import { role, roleBinding, SIDECAR_NAME } from './sidecar-spec.ts'
import { injectWorkload, type WorkloadOptions } from './workload.ts'

export type InjectOptions = WorkloadOptions & { rbac: boolean }

export type InjectResult = {
  output: string
  /** One line per obstacle, naming the object (and container); refused objects are written unchanged. */
  refusals: string[]
  /** How many workloads were changed, and how many already had everything. */
  injected: number
  unchanged: number
}

/** Throws InjectInputError for input that is not YAML; everything else is a result. */
export function inject(sources: readonly Source[], options: InjectOptions): InjectResult {
  const streams: Stream[] = sources.map(parseStream)
  const changed = new Set<Document>()
  const refusals: string[] = []
  let injected = 0
  let unchanged = 0
  // Namespace ('' for objects without one) -> ServiceAccounts whose pods run the sidecar.
  const accounts = new Map<string, Set<string>>()
  const rbacObjects: { node: YAMLMap; doc: Document; kind: string; namespace: string }[] = []

  for (const { docs } of streams) {
    for (const doc of docs) {
      for (const node of objectsOf(doc)) {
        const result = injectWorkload(node, doc, options)
        if (result.status === 'refused') refusals.push(...result.refusals)
        else if (result.status === 'injected' || result.status === 'unchanged') {
          if (result.status === 'injected') {
            changed.add(doc)
            injected += 1
          } else unchanged += 1
          const key = result.namespace ?? ''
          accounts.set(key, (accounts.get(key) ?? new Set()).add(result.serviceAccount))
        } else if (result.status === 'not-a-workload') {
          const object = node.toJSON() as { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } }
          if (
            object.apiVersion === 'rbac.authorization.k8s.io/v1' &&
            (object.kind === 'Role' || object.kind === 'RoleBinding') &&
            object.metadata?.name === SIDECAR_NAME
          ) {
            rbacObjects.push({
              node,
              doc,
              kind: object.kind,
              namespace: typeof object.metadata.namespace === 'string' ? object.metadata.namespace : '',
            })
          }
        }
      }
    }
  }

  const added: object[] = []
  if (options.rbac) {
    for (const [key, names] of accounts) {
      const namespace = key === '' ? undefined : key
      const existing = (kind: string) => rbacObjects.find((o) => o.kind === kind && o.namespace === key)
      if (existing('Role') === undefined) added.push(role(namespace))
      const binding = existing('RoleBinding')
      if (binding === undefined) {
        added.push(roleBinding(namespace, [...names]))
        continue
      }
      if (addSubjects(binding.node, binding.doc, [...names])) changed.add(binding.doc)
    }
  }
  return { output: printStreams(streams, changed, added), refusals, injected, unchanged }
}

/** Adds the ServiceAccounts a RoleBinding does not name yet; whether it changed. */
function addSubjects(binding: YAMLMap, doc: Document, names: readonly string[]): boolean {
  const subjects = (binding.toJSON() as { subjects?: { kind?: unknown; name?: unknown }[] }).subjects ?? []
  const missing = names.filter((name) => !subjects.some((s) => s?.kind === 'ServiceAccount' && s.name === name))
  if (missing.length === 0) return false
  const nodes = missing.map((name) => doc.createNode({ kind: 'ServiceAccount', name }))
  const seq = binding.get('subjects')
  if (isSeq(seq)) seq.items.push(...nodes)
  else binding.set('subjects', doc.createNode(missing.map((name) => ({ kind: 'ServiceAccount', name }))))
  return true
}
