/** What the fake API server (fake-kube.ts) makes of a request: its verb, and the record tests read back. */
import type { IncomingMessage } from 'node:http'

export const SSAR_PATH = '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews'

export type Verb = 'list' | 'watch'
/** `create`: a SelfSubjectAccessReview (POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews). */
export type RequestVerb = Verb | 'create'
export type RecordedRequest = {
  verb: RequestVerb
  method: string
  path: string
  query: URLSearchParams
  authorization: string | undefined
  userAgent: string | undefined
  acceptEncoding: string | undefined
  at: number
}

export function requestVerb(url: URL): RequestVerb {
  if (url.pathname === SSAR_PATH) return 'create'
  const watchParam = url.searchParams.get('watch')
  // apimachinery: any value but "0" or "false" (case-insensitive), even an empty one, means watch.
  return watchParam !== null && watchParam !== '0' && watchParam.toLowerCase() !== 'false' ? 'watch' : 'list'
}

export function recordRequest(req: IncomingMessage, url: URL, verb: RequestVerb): RecordedRequest {
  return {
    verb,
    method: req.method ?? 'GET',
    path: url.pathname,
    query: url.searchParams,
    authorization: req.headers.authorization,
    userAgent: req.headers['user-agent'],
    acceptEncoding: req.headers['accept-encoding'],
    at: performance.now(),
  }
}
