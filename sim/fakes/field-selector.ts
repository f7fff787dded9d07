/**
 * Field selectors as the API server parses them for EndpointSlices, which (like every resource) support only
 * metadata.name and metadata.namespace: `f=v`, `f==v`, `f!=v`, joined by commas. Used by the fake API server to
 * filter LIST and WATCH.
 */
import type { EndpointSlice } from '../../src/kube/types.ts'

export function parseFieldSelector(selector: string): (object: EndpointSlice) => boolean {
  const requirements: Array<(object: EndpointSlice) => boolean> = []
  for (const clause of selector.split(',')) {
    if (clause.trim() === '') continue
    const match = /^\s*([\w.]+)\s*(==|=|!=)\s*([^,]*?)\s*$/.exec(clause)
    if (!match) throw new Error(`invalid selector: '${selector}'; can't understand '${clause}'`)
    const [, field, op, value] = match as unknown as [string, string, string, string]
    const read =
      field === 'metadata.name'
        ? (o: EndpointSlice) => o.metadata?.name
        : field === 'metadata.namespace'
          ? (o: EndpointSlice) => o.metadata?.namespace
          : undefined
    if (read === undefined) throw new Error(`"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"`)
    requirements.push(op === '!=' ? (o) => read(o) !== value : (o) => read(o) === value)
  }
  return (object) => requirements.every((requirement) => requirement(object))
}
