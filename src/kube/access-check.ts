/**
 * The start-up access check: can this service account list and watch EndpointSlices in POD_NAMESPACE? Missing
 * RBAC otherwise shows up only at the first drain, as a drain that waits for DRAIN_TIMEOUT. Asks the API server
 * with a SelfSubjectAccessReview (any authenticated user may create one: system:basic-user grants it, so this
 * needs no extra Role); where reviews cannot be created, probes a LIST (limit=1) and a WATCH (timeoutSeconds=1)
 * that match nothing and reads a 403 Status. Reports ONE line, and never throws: a denied verb is logged, the
 * sidecar keeps serving, and a drain then treats the API as an outage like any other.
 */
import type { Clock } from '../clock.ts'
import { UpstreamError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Fetch } from '../transport.ts'
import { readBoundedText } from './body.ts'
import { endpointSlicesUrl } from './client.ts'
import { MAX_SMALL_BODY_BYTES } from './limits.ts'
import { errorFromResponse, kubeRequest } from './request.ts'
import { retry } from './retry.ts'
import type { TokenSource } from './token.ts'
import * as v from 'valibot'

const REQUIRED_VERBS = ['list', 'watch'] as const
type RequiredVerb = (typeof REQUIRED_VERBS)[number]
const RESOURCE = 'endpointslices'
const GROUP = 'discovery.k8s.io'
const SSAR_PATH = '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews'
/** A label selector no EndpointSlice carries: the fallback probes then transfer no objects. */
const NOTHING_SELECTOR = 'drain-coordinator.io/access-check=never-set'

export type AccessCheckDeps = {
  apiUrl: string
  namespace: string
  fetch: Fetch
  token: TokenSource
  clock: Clock
  log: Logger
  userAgent: string
  requestTimeoutMs?: number
  /** Attempts when the API cannot be reached at all; the check then gives up and says so. */
  attempts?: number
  /** First backoff step (doubling, jittered, never shorter than a Retry-After). */
  retryDelayMs?: number
  random?: () => number
}

export type AccessReport =
  | { result: 'allowed'; via: 'review' | 'probe' }
  | { result: 'denied'; via: 'review' | 'probe'; missing: RequiredVerb[] }
  | { result: 'unknown'; error: unknown }

type Verdict = { allowed: boolean; reason?: string }

export async function checkKubeAccess(deps: AccessCheckDeps): Promise<AccessReport> {
  let report: AccessReport
  try {
    const policy = { baseMs: deps.retryDelayMs ?? 1_000, maxMs: 10_000, ...(deps.random === undefined ? {} : { random: deps.random }) }
    report = await retry({ clock: deps.clock, policy, attempts: deps.attempts ?? 3 }, () => checkOnce(deps))
  } catch (error) {
    report = { result: 'unknown', error }
  }
  logReport(deps, report)
  return report
}

const ReviewSchema = v.looseObject({ status: v.looseObject({ allowed: v.boolean(), reason: v.nullish(v.string()) }) })

async function checkOnce(deps: AccessCheckDeps): Promise<Exclude<AccessReport, { result: 'unknown' }>> {
  const verdicts = new Map<RequiredVerb, Verdict>()
  let via: 'review' | 'probe' = 'review'
  for (const verb of REQUIRED_VERBS) {
    const verdict = await review(deps, verb)
    if (verdict === 'unavailable') {
      via = 'probe'
      break
    }
    verdicts.set(verb, verdict)
  }
  if (via === 'probe') for (const verb of REQUIRED_VERBS) verdicts.set(verb, await probe(deps, verb))
  const missing = REQUIRED_VERBS.filter((verb) => !verdicts.get(verb)!.allowed)
  return missing.length === 0 ? { result: 'allowed', via } : { result: 'denied', via, missing }
}

function logReport(deps: AccessCheckDeps, report: AccessReport): void {
  const where = { resource: `${RESOURCE}.${GROUP}`, namespace: deps.namespace }
  if (report.result === 'allowed') {
    deps.log.info('kube_access_ok', { verbs: [...REQUIRED_VERBS], ...where, via: report.via })
  } else if (report.result === 'denied') {
    const verbs = report.missing.join(' and ')
    deps.log.error('kube_access_denied', {
      verb: report.missing.join(','),
      ...where,
      via: report.via,
      message: `this service account may not ${verbs} ${RESOURCE}.${GROUP} in namespace ${deps.namespace}: every drain will hold its hook until DRAIN_TIMEOUT; grant a Role with verbs [list, watch] on ${RESOURCE} (apiGroups: ["${GROUP}"]) bound to the pod's service account`,
    })
  } else {
    deps.log.warn('kube_access_unchecked', {
      ...where,
      error: report.error,
      effect: 'RBAC not verified at start-up; drains will use the API as usual',
    })
  }
}

/** One SelfSubjectAccessReview; 'unavailable' when the server will not take reviews from us (403, 404). */
async function review(deps: AccessCheckDeps, verb: RequiredVerb): Promise<Verdict | 'unavailable'> {
  const url = `${deps.apiUrl}${SSAR_PATH}`
  const body = JSON.stringify({
    kind: 'SelfSubjectAccessReview',
    apiVersion: 'authorization.k8s.io/v1',
    spec: { resourceAttributes: { namespace: deps.namespace, verb, group: GROUP, resource: RESOURCE } },
  })
  const { response, done } = await kubeRequest(requestDeps(deps), { method: 'POST', url, body })
  try {
    if (response.status === 403 || response.status === 404) return 'unavailable'
    if (!response.ok) throw await errorFromResponse(`POST ${url}`, response, deps.clock.wallTime().getTime())
    const text = await readBoundedText(`POST ${url}`, response, MAX_SMALL_BODY_BYTES, 'MAX_SMALL_BODY_BYTES (an access review)')
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      throw new UpstreamError(`POST ${url}`, { status: response.status, message: 'answer is not JSON' })
    }
    const answer = v.safeParse(ReviewSchema, parsed)
    if (!answer.success) throw new UpstreamError(`POST ${url}`, { status: response.status, message: 'answer has no status.allowed' })
    const { allowed, reason } = answer.output.status
    return { allowed, ...(typeof reason === 'string' && reason ? { reason } : {}) }
  } finally {
    done()
    await response.body?.cancel().catch(() => {})
  }
}

/** A LIST or WATCH that matches nothing: 2xx means allowed, 403 means denied, anything else is an error. */
async function probe(deps: AccessCheckDeps, verb: RequiredVerb): Promise<Verdict> {
  const query = new URLSearchParams({
    labelSelector: NOTHING_SELECTOR,
    ...(verb === 'list' ? { limit: '1' } : { watch: '1', timeoutSeconds: '1' }),
  })
  const url = `${endpointSlicesUrl(deps.apiUrl, deps.namespace)}?${query}`
  const { response, done } = await kubeRequest(requestDeps(deps), { method: 'GET', url })
  done()
  // A watch's headers are the answer; its body is not needed.
  await response.body?.cancel().catch(() => {})
  if (response.ok) return { allowed: true }
  if (response.status === 403) return { allowed: false }
  throw new UpstreamError(`${verb.toUpperCase()} ${url}`, { status: response.status })
}

function requestDeps(deps: AccessCheckDeps) {
  return {
    fetch: deps.fetch,
    token: deps.token,
    clock: deps.clock,
    userAgent: deps.userAgent,
    ...(deps.requestTimeoutMs === undefined ? {} : { timeoutMs: deps.requestTimeoutMs }),
  }
}
