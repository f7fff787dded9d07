/**
 * GET of the sidecar's own Pod, for its deletion time: `metadata.deletionTimestamp` is when the kubelet's grace
 * period runs out (SIGKILL). The object is validated with a schema at this boundary; a malformed Pod is an error,
 * never read as "not being deleted" silently (the caller then falls back to DRAIN_TIMEOUT and says so).
 *
 * valibot rather than zod: the same declarative schemas with a fraction of the bundle size, tree-shaken per
 * function, which matters for a sidecar whose whole image is one bundle.
 */
import * as v from 'valibot'
import { DrainCoordinatorError, UpstreamError } from '../errors.ts'
import { readBoundedText } from './body.ts'
import { errorFromResponse, kubeRequest, type KubeRequestDeps } from './request.ts'
import { describeIssues } from './schema.ts'

/** A Pod is tens of KiB; anything far larger is not an answer to trust or to hold in memory. */
export const MAX_POD_BYTES = 1024 * 1024

const PodSchema = v.object({
  kind: v.optional(v.literal('Pod')),
  metadata: v.object({
    name: v.string(),
    uid: v.optional(v.string()),
    deletionTimestamp: v.optional(v.nullable(v.pipe(v.string(), v.isoTimestamp()))),
    deletionGracePeriodSeconds: v.optional(v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0)))),
  }),
})

export type PodDeletion = {
  /** When the grace period runs out; undefined: the pod is not being deleted. */
  deletionTimestamp: Date | undefined
  gracePeriodSeconds: number | undefined
}

export type PodReadDeps = KubeRequestDeps & { apiUrl: string; namespace: string; name: string; uid: string | undefined }

export function podUrl(apiUrl: string, namespace: string, name: string): string {
  return `${apiUrl}/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`
}

export async function readPodDeletion(deps: PodReadDeps, signal: AbortSignal): Promise<PodDeletion> {
  const url = podUrl(deps.apiUrl, deps.namespace, deps.name)
  const what = `GET ${url}`
  const { response, done } = await kubeRequest(deps, { method: 'GET', url, signal })
  try {
    if (!response.ok) throw await errorFromResponse(what, response, deps.clock.wallTime().getTime())
    const text = await readBoundedText(what, response, MAX_POD_BYTES, 'MAX_POD_BYTES (one Pod)', signal)
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (error) {
      throw new UpstreamError(what, { message: 'the answer is not JSON' }, { cause: error })
    }
    const parsed = v.safeParse(PodSchema, json)
    if (!parsed.success) {
      throw new DrainCoordinatorError('POD_INVALID', `${what}: not a valid Pod: ${describeIssues(parsed.issues)}`)
    }
    const meta = parsed.output.metadata
    if (deps.uid !== undefined && meta.uid !== undefined && meta.uid !== deps.uid) {
      throw new DrainCoordinatorError('POD_REPLACED', `${what}: the Pod named ${deps.name} has uid ${meta.uid}, not this pod's ${deps.uid}`)
    }
    return {
      deletionTimestamp: meta.deletionTimestamp ? new Date(meta.deletionTimestamp) : undefined,
      gracePeriodSeconds: meta.deletionGracePeriodSeconds ?? undefined,
    }
  } finally {
    done()
  }
}
