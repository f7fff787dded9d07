/**
 * Every resource the API server can make this sidecar spend has a bound here, sized for the shipped 192Mi memory
 * limit and for real clusters (README "Choices made where the contract was silent" gives the arithmetic). Hitting
 * one is a failed request, retried like any other, and never evidence that the pod left a slice.
 */
import { DrainCoordinatorError } from '../errors.ts'

/**
 * Slices per LIST page. A slice holds at most 1000 endpoints (about 400 KB of JSON); the controller's usual
 * 100-endpoint slices are about 35 KB, so a page of 25 is under 1 MB.
 */
export const DEFAULT_PAGE_SIZE = 25
/**
 * Decoded bytes of one LIST page. A page above it is asked for again with half the limit (kept for the pages
 * after it), down to one slice, which even at 1000 endpoints fits twice over.
 */
export const MAX_PAGE_BYTES = 1024 * 1024
/** Decoded bytes of all pages of one LIST together: about 1,800 slices of 100 endpoints in one namespace. */
export const MAX_LIST_BYTES = 64 * 1024 * 1024
/** Pages of one LIST: at 50 a page, 250,000 slices, far beyond a real namespace. */
export const MAX_LIST_PAGES = 5_000
/** Slices one LIST may report as naming this pod (one per Service and address family in real clusters). */
export const MAX_KEPT_SLICES = 1_000
/** Decoded bytes of one watch line: one event, whose slice is at most about 400 KB. */
export const MAX_EVENT_BYTES = 4 * 1024 * 1024
/** Decoded bytes of an error answer (a Status) or a SelfSubjectAccessReview; anything beyond is cut off. */
export const MAX_SMALL_BODY_BYTES = 64 * 1024

/** A bound was hit: the answer is abandoned and the request counts as failed. */
export class KubeLimitError extends DrainCoordinatorError {
  override name = 'KubeLimitError'
  readonly bound: string
  constructor(what: string, bound: string, limit: number, unit = 'bytes') {
    super('KUBE_LIMIT_EXCEEDED', `${what}: answer exceeds ${bound} (${limit} ${unit}); abandoned and retried`)
    this.bound = bound
  }
}
