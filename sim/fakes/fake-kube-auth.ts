/**
 * Who may do what on the fake API server (fake-kube.ts): the certificates it serves (test/fixtures/tls/), the
 * bearer tokens it accepts, the RBAC refusals it answers with, and its SelfSubjectAccessReviews.
 */
import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'
import type { RequestVerb, Verb } from './fake-kube-request.ts'
import { sendJson, sendMethodNotAllowed, sendStatus } from './fake-kube-status.ts'

const TLS_DIR = fileURLToPath(new URL('../../test/fixtures/tls/', import.meta.url))
export const CLUSTER_CA_FILE = `${TLS_DIR}cluster-ca.crt`
export const ROGUE_CA_FILE = `${TLS_DIR}rogue-ca.crt`
/** The cluster's next CA, for CA rotation (test/fixtures/tls/generate.sh). */
export const ROTATED_CA_FILE = `${TLS_DIR}rotated-ca.crt`
export type CertificateName = 'cluster' | 'rogue' | 'rotated'
export const serverCertificate = (name: CertificateName) => ({
  cert: readFileSync(`${TLS_DIR}${name}-server.crt`),
  key: readFileSync(`${TLS_DIR}${name}-server.key`),
})

/**
 * Answers a request that carries no accepted bearer token, as the API server does, and says whether it did; a
 * request with one is left to the caller.
 */
export function refuseUnauthenticated(
  req: IncomingMessage,
  res: ServerResponse,
  tokens: Set<string>,
  verb: RequestVerb,
  namespace: string,
) {
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
  if (bearer === undefined) {
    // No credentials at all: the API server (anonymous auth on, its default) takes the request as
    // system:anonymous, whom RBAC grants nothing here: 403, not 401.
    if (verb === 'create') {
      sendStatus(
        res,
        403,
        'Forbidden',
        'selfsubjectaccessreviews.authorization.k8s.io is forbidden: User "system:anonymous" cannot create resource "selfsubjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope',
        { group: 'authorization.k8s.io', kind: 'selfsubjectaccessreviews' },
      )
    } else sendForbidden(res, 'system:anonymous', verb, namespace)
    return true
  }
  if (!tokens.has(bearer)) {
    sendStatus(res, 401, 'Unauthorized', 'Unauthorized')
    return true
  }
  return false
}

/** 403 for a LIST or WATCH on endpointslices that RBAC does not grant `user`. */
export function sendForbidden(res: ServerResponse, user: string, verb: Verb, namespace: string) {
  sendStatus(
    res,
    403,
    'Forbidden',
    `endpointslices.discovery.k8s.io is forbidden: User "${user}" cannot ${verb} resource "endpointslices" in API group "discovery.k8s.io" in the namespace "${namespace}"`,
    { group: 'discovery.k8s.io', kind: 'endpointslices' },
  )
}

/** The service account the sidecar runs as, in `namespace`. */
export const sidecarUser = (namespace: string) => `system:serviceaccount:${namespace}:drain-coordinator`

/** Allowed: list and watch on endpointslices.discovery.k8s.io in this namespace, unless forbidden. */
export async function answerReview(req: IncomingMessage, res: ServerResponse, namespace: string, forbidden: ReadonlySet<Verb>) {
  if (req.method !== 'POST') return sendMethodNotAllowed(res)
  let text = ''
  for await (const chunk of req) text += chunk
  let spec: { resourceAttributes?: { namespace?: string; verb?: string; group?: string; resource?: string } }
  try {
    spec = (JSON.parse(text) as { spec?: typeof spec }).spec ?? {}
  } catch {
    return sendStatus(res, 400, 'BadRequest', 'the body of the request was in an unknown format')
  }
  const attrs = spec.resourceAttributes ?? {}
  const allowed =
    attrs.group === 'discovery.k8s.io' &&
    attrs.resource === 'endpointslices' &&
    attrs.namespace === namespace &&
    (attrs.verb === 'list' || attrs.verb === 'watch') &&
    !forbidden.has(attrs.verb)
  sendJson(res, 201, {
    kind: 'SelfSubjectAccessReview',
    apiVersion: 'authorization.k8s.io/v1',
    metadata: { creationTimestamp: null },
    spec,
    status: { allowed, ...(allowed ? { reason: 'RBAC: allowed by RoleBinding "drain-coordinator/' + namespace + '"' } : {}) },
  })
}
