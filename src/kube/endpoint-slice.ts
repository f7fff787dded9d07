/**
 * Finds this pod in an EndpointSlice and says whether it still takes traffic there. Pure: no I/O, no clock.
 * The pod is matched by targetRef.uid, by a targetRef to the Pod named POD_NAME, or by one of its addresses
 * (compared in canonical form).
 */
import { canonicalIp } from '../ip.ts'
import { type Endpoint, type EndpointSlice, type PodIdentity, SERVICE_NAME_LABEL } from './types.ts'

/**
 * - `absent`: the pod has no endpoint in this slice (or the slice is a placeholder with `endpoints: null`).
 * - `ready`: still routed to; holds the hook.
 * - `not-ready`: `ready: false`; released.
 * - `terminating-ready`: `ready: true` and `terminating: true`, which a Service with publishNotReadyAddresses
 *   keeps until the Pod object is gone. Counted as released, or every such pod would wait for its deadline.
 */
export type EndpointState = 'absent' | 'ready' | 'not-ready' | 'terminating-ready'

export function endpointStateIn(slice: EndpointSlice, pod: PodIdentity): EndpointState {
  let state: EndpointState = 'absent'
  for (const endpoint of slice.endpoints ?? []) {
    if (!isThisPod(endpoint, pod)) continue
    const next = stateOf(endpoint)
    // Several endpoints for one pod are unusual (custom slices); the most conservative one wins.
    if (rank(next) > rank(state)) state = next
  }
  return state
}

/** True while this state keeps traffic flowing to the pod. */
export function holdsTraffic(state: EndpointState): boolean {
  return state === 'ready'
}

function stateOf(endpoint: Endpoint): EndpointState {
  // API documentation: "A nil value should be interpreted as true" for ready, "false" for terminating.
  const ready = endpoint.conditions?.ready ?? true
  const terminating = endpoint.conditions?.terminating ?? false
  if (!ready) return 'not-ready'
  return terminating ? 'terminating-ready' : 'ready'
}

const RANKS: Record<EndpointState, number> = { absent: 0, 'not-ready': 1, 'terminating-ready': 2, ready: 3 }
const rank = (state: EndpointState) => RANKS[state]

function isThisPod(endpoint: Endpoint, pod: PodIdentity): boolean {
  const ref = endpoint.targetRef
  if (ref && pod.uid !== undefined && ref.uid === pod.uid) return true
  if (ref && pod.name !== undefined && (ref.kind ?? 'Pod') === 'Pod' && ref.name === pod.name) {
    // A targetRef naming another namespace's pod of the same name is not us.
    if (ref.namespace === undefined || pod.namespace === undefined || ref.namespace === pod.namespace) {
      // A same-named pod with another UID is a previous incarnation (StatefulSet), not us.
      if (pod.uid === undefined || ref.uid === undefined || ref.uid === pod.uid) return true
    }
  }
  if (pod.ips.length === 0) return false
  for (const address of endpoint.addresses ?? []) {
    const ip = canonicalIp(address)
    if (ip !== undefined && pod.ips.includes(ip)) return true
  }
  return false
}

/** The Service a slice belongs to, if the controller labelled it. */
export function serviceNameOf(slice: EndpointSlice): string | undefined {
  return slice.metadata?.labels?.[SERVICE_NAME_LABEL] ?? undefined
}
