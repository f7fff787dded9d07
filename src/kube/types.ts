/**
 * The parts of the Kubernetes wire format this sidecar reads (discovery.k8s.io/v1 EndpointSlice, watch events,
 * Status). Everything is optional or nullable where the API allows it: list items carry no `kind`, an empty slice
 * has `endpoints: null`, a BOOKMARK is an empty object with only `metadata.resourceVersion`.
 */

export type ObjectMeta = {
  name?: string
  namespace?: string
  uid?: string
  resourceVersion?: string
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
  targetRef?: { kind?: string; name?: string; namespace?: string; uid?: string } | null
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
  status?: string
  message?: string
  reason?: string
  code?: number
  details?: { retryAfterSeconds?: number } | null
}

export const WATCH_EVENT_TYPES = ['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR'] as const
export type WatchEventType = (typeof WATCH_EVENT_TYPES)[number]

export type WatchEvent =
  | { type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK'; object: EndpointSlice }
  | { type: 'ERROR'; object: Partial<Status> }

/** Service-name label the EndpointSlice controller sets; narrows list and watch to the pod's Services. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
