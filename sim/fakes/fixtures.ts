/** Builders for EndpointSlices shaped like the controller's (docs/kubernetes-api.md §1). */
import type { EndpointSlice } from '../../src/kube/types.ts'

export type EndpointSpec = {
  ip: string
  podName?: string
  uid?: string
  /** undefined leaves the condition out of the object (the API says: absent ready means ready). */
  ready?: boolean
  serving?: boolean
  terminating?: boolean
}

export function endpointSlice({
  name,
  service = name.replace(/-[a-z0-9]{5}$/, ''),
  namespace = 'default',
  addressType = 'IPv4',
  endpoints,
}: {
  name: string
  service?: string
  namespace?: string
  addressType?: 'IPv4' | 'IPv6'
  endpoints: EndpointSpec[] | null
}): EndpointSlice {
  return {
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    metadata: {
      name,
      namespace,
      labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType,
    endpoints:
      endpoints === null
        ? null
        : endpoints.map((spec) => ({
            addresses: [spec.ip],
            conditions: {
              ...(spec.ready === undefined ? {} : { ready: spec.ready }),
              ...(spec.serving === undefined ? {} : { serving: spec.serving }),
              ...(spec.terminating === undefined ? {} : { terminating: spec.terminating }),
            },
            ...(spec.podName === undefined && spec.uid === undefined
              ? {}
              : {
                  targetRef: {
                    kind: 'Pod',
                    namespace,
                    ...(spec.podName ? { name: spec.podName } : {}),
                    ...(spec.uid ? { uid: spec.uid } : {}),
                  },
                }),
          })),
  }
}

/** The endpoint states the EndpointSlice controller writes (kubernetes/endpointslice podToEndpoint). */
export const READY = { ready: true, serving: true, terminating: false } as const
export const TERMINATING = { ready: false, serving: true, terminating: true } as const
/** A terminating pod behind a Service with publishNotReadyAddresses: true. */
export const TERMINATING_PUBLISHED = { ready: true, serving: true, terminating: true } as const
