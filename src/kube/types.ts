/**
 * The parts of the Kubernetes wire format this sidecar reads (discovery.k8s.io/v1 EndpointSlice, watch events,
 * Status). Everything is optional or nullable where the API allows it: list items carry no `kind`, an empty slice
 * has `endpoints: null`, a BOOKMARK is an empty object with only `metadata.resourceVersion`.
 */

export type ObjectMeta = {
  name?: string
  namespace?: string | null
  uid?: string | null
  resourceVersion?: string | null
  labels?: Record<string, string> | null
}

export type EndpointConditions = {
  ready?: boolean | null
  serving?: boolean | null
  terminating?: boolean | null
}

export type Endpoint = {
  addresses?: string[] | null
  conditions?: EndpointConditions | null
  targetRef?: { kind?: string | null; name?: string | null; namespace?: string | null; uid?: string | null } | null
  nodeName?: string
}

export type EndpointSlice = {
  kind?: string
  apiVersion?: string
  metadata?: ObjectMeta
  addressType?: string
  endpoints?: Endpoint[] | null
}

export type EndpointSliceList = {
  kind?: string
  metadata?: { resourceVersion?: string; continue?: string }
  items?: EndpointSlice[] | null
}

export type Status = {
  kind: 'Status'
  status?: string | null
  message?: string | null
  reason?: string | null
  code?: number | null
  details?: { retryAfterSeconds?: number | null } | null
}

export const WATCH_EVENT_TYPES = ['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR'] as const
export type WatchEventType = (typeof WATCH_EVENT_TYPES)[number]

/** A raw event as it came off the wire: its object is not validated yet (kube/schema.ts does that). */
export type WatchEvent =
  { type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK'; object: EndpointSlice } | { type: 'ERROR'; object: Partial<Status> }

/**
 * What the wait gets from a watch: a slice change that passed validation, a change to a named slice that did not
 * (it counts as still holding the pod), or a BOOKMARK's resourceVersion. ERROR events and events without a
 * readable name surface as errors instead (the wait lists again).
 */
export type SliceEvent =
  | { type: 'ADDED' | 'MODIFIED' | 'DELETED'; slice: EndpointSlice; resourceVersion: string | undefined }
  | { type: 'INVALID'; name: string; service: string | undefined; problem: string; resourceVersion: undefined }
  | { type: 'BOOKMARK'; resourceVersion: string }

/** Who this sidecar is, as the Downward API tells it: how the pod is found in EndpointSlices. */
export type PodIdentity = Readonly<{
  name: string | undefined
  namespace: string | undefined
  uid: string | undefined
  /** Canonical addresses, from POD_IP (comma-separated on dual-stack pods). */
  ips: readonly string[]
}>

/** How the endpoint wait follows the slices: a WATCH (falling back to polling), or a LIST every interval. */
export const ENDPOINT_MODES = ['watch', 'poll'] as const
export type EndpointMode = (typeof ENDPOINT_MODES)[number]

/** The verbs this sidecar uses on EndpointSlices (and grants in its Role): metric labels and RBAC checks. */
export const KUBE_VERBS = ['list', 'watch'] as const
export type KubeVerb = (typeof KUBE_VERBS)[number]

/** What failed validation: a slice, a LIST's envelope, a watch event's envelope, or an error answer's Status. */
export const INVALID_OBJECT_KINDS = ['endpointslice', 'list', 'watch_event', 'status'] as const
export type InvalidObjectKind = (typeof INVALID_OBJECT_KINDS)[number]

/** Service-name label the EndpointSlice controller sets; narrows list and watch to the pod's Services. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
