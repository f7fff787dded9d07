/**
 * This pod's state in each EndpointSlice that names it, or that could not be read. Keeps only those slices, as
 * small records, so memory stays small however many slices the namespace has.
 *
 * A slice that failed validation counts as still routing to the pod: unknown is not safe. It is logged once (its
 * name and what was wrong) and stays held until evidence from a well-formed object clears it: a later valid
 * version of that slice (ADDED/MODIFIED on the watch), its valid DELETED event, or a LIST that covers it in which
 * it is valid or gone.
 */
import type { Logger } from '../log.ts'
import { type EndpointState, endpointStateIn, holdsTraffic, serviceNameOf } from './endpoint-slice.ts'
import type { Decoded } from './schema.ts'
import { type EndpointSlice, type PodIdentity, SERVICE_NAME_LABEL } from './types.ts'

export type TrackedState = EndpointState | 'invalid'

/** What a LIST keeps of one slice. `name` undefined: an invalid slice whose name could not be read. */
export type TrackedSlice = { name: string | undefined; state: TrackedState; service: string | undefined; problem?: string }

/** The key for invalid slices without a readable name: one entry holds for all of them. */
const UNNAMED = '(unreadable name)'

const holds = (state: TrackedState) => state === 'invalid' || holdsTraffic(state)

/** `kubernetes.io/service-name in (a,b)` */
export function selectorFor(services: readonly string[]): string {
  return `${SERVICE_NAME_LABEL} in (${services.join(',')})`
}

export class SliceTracker {
  readonly #log: Logger
  readonly #pod: PodIdentity
  readonly #states = new Map<string, { state: TrackedState; service: string | undefined; problem?: string | undefined }>()
  readonly #loggedTerminatingReady = new Set<string>()

  constructor(deps: { log: Logger; pod: PodIdentity }) {
    this.#log = deps.log
    this.#pod = deps.pod
  }

  /** For a LIST's `select`: what to keep of one item (nothing for a valid slice that does not name the pod). */
  readonly select = (item: Decoded<EndpointSlice>): TrackedSlice | undefined => {
    if (!item.ok) return { name: item.invalid.name, state: 'invalid', service: item.invalid.service, problem: item.invalid.problem }
    const state = endpointStateIn(item.value, this.#pod)
    return state === 'absent' ? undefined : { name: item.value.metadata?.name, state, service: serviceNameOf(item.value) }
  }

  get done(): boolean {
    return this.holdingCount === 0
  }

  get holdingCount(): number {
    let count = 0
    for (const { state } of this.#states.values()) if (holds(state)) count++
    return count
  }

  /** True when a slice holds that a LIST narrowed to Services might not see (no readable Service label). */
  get holdsUnlabelled(): boolean {
    for (const { state, service } of this.#states.values()) if (holds(state) && service === undefined) return true
    return false
  }

  /** Takes a LIST as the truth for the slices it covered: all of them, or only those of `services`. */
  reset(items: readonly TrackedSlice[], services?: readonly string[]): void {
    const seen = new Set<string>()
    for (const item of items) {
      const name = item.name ?? UNNAMED
      seen.add(name)
      this.#set(name, item.state, item.service, 'listed', item.problem)
    }
    for (const [name, { service }] of [...this.#states]) {
      if (seen.has(name)) continue
      if (services !== undefined && (service === undefined || !services.includes(service))) continue
      this.#set(name, 'absent', undefined, 'listed without it')
    }
  }

  apply(slice: EndpointSlice): void {
    this.#set(slice.metadata?.name ?? UNNAMED, endpointStateIn(slice, this.#pod), serviceNameOf(slice), 'changed')
  }

  remove(slice: EndpointSlice): void {
    this.#set(slice.metadata?.name ?? UNNAMED, 'absent', undefined, 'slice deleted')
  }

  markInvalid(name: string, service: string | undefined, problem: string): void {
    this.#set(name, 'invalid', service, 'changed', problem)
  }

  /**
   * What a watch needs to see: the one slice that still routes to the pod, by name (each sidecar then receives
   * only its own slice's changes, not every change to a large Service), or else its Services' slices.
   */
  watchSelector(): { fieldSelector?: string; labelSelector?: string } {
    const holding = [...this.#states].filter(([, { state }]) => holds(state))
    if (holding.length === 1 && holding[0]![0] !== UNNAMED) return { fieldSelector: `metadata.name=${holding[0]![0]}` }
    const services = this.holdingServices()
    return services === undefined ? {} : { labelSelector: selectorFor(services) }
  }

  /** The Services that route to the pod, if every slice that does is labelled with its Service. */
  holdingServices(): string[] | undefined {
    const services = new Set<string>()
    for (const { state, service } of this.#states.values()) {
      if (!holds(state)) continue
      if (service === undefined) return undefined
      services.add(service)
    }
    return services.size === 0 ? undefined : [...services].sort()
  }

  describe(): Record<string, TrackedState> {
    return Object.fromEntries([...this.#states].map(([name, { state }]) => [name, state]))
  }

  #set(name: string, state: TrackedState, service: string | undefined, why: string, problem?: string): void {
    const before = this.#states.get(name)
    const from = before?.state ?? 'absent'
    if (state === 'absent') this.#states.delete(name)
    else this.#states.set(name, { state, service, problem })
    if (state === 'invalid' && (from !== 'invalid' || before?.problem !== problem)) {
      // Once per slice and problem: a LIST that keeps returning the same bad slice is not a new event.
      this.#log.warn('endpoint_slice_invalid', {
        slice: name,
        problem,
        effect: 'counted as still routing to the pod until a valid version of it, its deletion, or a LIST without it',
      })
    }
    if (from === state) return
    this.#log.info('endpoint_changed', { slice: name, from, to: state, why })
    if (state === 'terminating-ready' && !this.#loggedTerminatingReady.has(name)) {
      this.#loggedTerminatingReady.add(name)
      this.#log.info('endpoint_terminating_but_ready', {
        slice: name,
        note: 'ready:true with terminating:true (publishNotReadyAddresses); counted as removed',
      })
    }
  }
}
