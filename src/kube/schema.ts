/**
 * The API objects this sidecar reads, validated where they enter (valibot). Only the fields the endpoint wait
 * reads are checked; any other field may hold anything (extra fields are how the API evolves). An object that
 * fails is never read as "absent": callers get an Invalid naming the object (if its name is readable) and what
 * was wrong, as a path and a short message, never the value itself, which may be huge or nested thousands of
 * levels deep.
 */
import * as v from 'valibot'
import { type EndpointSlice, SERVICE_NAME_LABEL, type Status } from './types.ts'

/** The API server refuses a slice with more; a bigger one did not come from it. */
export const MAX_ENDPOINTS_PER_SLICE = 1_000

/** valibot's object and record schemas accept arrays (they are objects to `typeof`); the API never sends one there. */
const isRecord = (input: unknown): input is Record<string, unknown> => typeof input === 'object' && input !== null && !Array.isArray(input)
const record = v.custom<Record<string, unknown>>(isRecord, 'expected Object')
const obj = <const T extends v.ObjectEntries>(entries: T) => v.pipe(record, v.looseObject(entries))

const str = v.string()
const optionalString = v.nullish(str)
const optionalBool = v.nullish(v.boolean())

const targetRef = obj({ kind: optionalString, name: optionalString, namespace: optionalString, uid: optionalString })
const endpoint = obj({
  addresses: v.nullish(v.array(str)),
  conditions: v.nullish(obj({ ready: optionalBool, serving: optionalBool, terminating: optionalBool })),
  targetRef: v.nullish(targetRef),
})
const metadata = obj({
  name: str,
  namespace: optionalString,
  resourceVersion: optionalString,
  labels: v.nullish(v.pipe(record, v.record(str, str))),
})

export const EndpointSliceSchema = obj({
  metadata,
  endpoints: v.nullish(v.pipe(v.array(endpoint), v.maxLength(MAX_ENDPOINTS_PER_SLICE, `more than ${MAX_ENDPOINTS_PER_SLICE} endpoints`))),
})

/**
 * A LIST answer's envelope; each item is checked on its own, so one bad item does not hide the others. Strict on
 * what makes it a list of slices: an answer without `items` (a Status, `{}` from a proxy) would otherwise read as
 * "no slice routes to the pod", which is evidence the sidecar must never invent. The API server always sends
 * `kind`, `metadata.resourceVersion` and `items` (`[]` when there are none).
 */
export const ListEnvelopeSchema = obj({
  kind: v.literal('EndpointSliceList'),
  metadata: obj({ resourceVersion: v.pipe(str, v.minLength(1, 'empty')), continue: optionalString }),
  items: v.array(v.unknown()),
})

/** A BOOKMARK carries only a resourceVersion, and that is all we read of it. */
export const BookmarkSchema = obj({ metadata: obj({ resourceVersion: str }) })

export const StatusSchema = obj({
  kind: v.literal('Status'),
  status: optionalString,
  message: optionalString,
  reason: optionalString,
  code: v.nullish(v.pipe(v.number(), v.integer())),
  details: v.nullish(obj({ retryAfterSeconds: v.nullish(v.pipe(v.number(), v.integer(), v.minValue(0))) })),
})

export type Invalid = {
  name: string | undefined
  /** Its kubernetes.io/service-name label, if that is readable: narrowed LISTs and WATCHes must still see it. */
  service: string | undefined
  problem: string
}
export type Decoded<T> = { ok: true; value: T } | { ok: false; invalid: Invalid }

/** Path and message of the first few issues, each cut short: enough to find the field, never the value. */
export function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  return issues
    .slice(0, 3)
    .map((issue) => {
      const path = (issue.path ?? [])
        .slice(0, 8)
        .map((item) => clip(String(item.key), 40))
        .join('.')
      const message = clip(
        issue.kind === 'schema' && issue.type !== 'custom'
          ? `expected ${issue.expected ?? issue.type}, got ${issue.received}`
          : issue.message,
        120,
      )
      return path === '' ? message : `${path}: ${message}`
    })
    .join('; ')
}

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max)}…` : text)

/** The object's metadata.name, if it is a short string; used to name an object that failed validation. */
export function readableName(value: unknown): string | undefined {
  const meta = typeof value === 'object' && value !== null ? (value as { metadata?: unknown }).metadata : undefined
  const name = typeof meta === 'object' && meta !== null ? (meta as { name?: unknown }).name : undefined
  // A name longer than any DNS subdomain (253) did not come from the API server.
  return typeof name === 'string' && name !== '' && name.length <= 253 ? name : undefined
}

function readableService(value: unknown): string | undefined {
  const meta = typeof value === 'object' && value !== null ? (value as { metadata?: unknown }).metadata : undefined
  const labels = typeof meta === 'object' && meta !== null ? (meta as { labels?: unknown }).labels : undefined
  const service = typeof labels === 'object' && labels !== null ? (labels as Record<string, unknown>)[SERVICE_NAME_LABEL] : undefined
  // A label value is at most 63 characters of [A-Za-z0-9._-]; anything else cannot go into a selector.
  return typeof service === 'string' && /^[A-Za-z0-9._-]{1,63}$/.test(service) ? service : undefined
}

export function decodeSlice(value: unknown): Decoded<EndpointSlice> {
  const result = v.safeParse(EndpointSliceSchema, value)
  if (result.success) return { ok: true, value: result.output as EndpointSlice }
  return { ok: false, invalid: { name: readableName(value), service: readableService(value), problem: describeIssues(result.issues) } }
}

export function decodeStatus(value: unknown): Status | undefined {
  const result = v.safeParse(StatusSchema, value)
  return result.success ? (result.output as Status) : undefined
}
