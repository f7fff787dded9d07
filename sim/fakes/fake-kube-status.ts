/**
 * How the fake API server (fake-kube.ts) answers with JSON: a body with its content-length, and the metav1.Status
 * bodies the API server sends for errors (401, 403, 404, 405, 410, ...).
 */
import type { ServerResponse } from 'node:http'

export function sendJson(res: ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

export function sendStatus(res: ServerResponse, code: number, reason: string, message: string, details?: Record<string, unknown>) {
  sendJson(res, code, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  })
}

/** The 410 Status of a resourceVersion older than the server still holds, as a watch ERROR event carries it. */
export function expiredStatus(message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'Expired', code: 410 }
}

export const sendNotFound = (res: ServerResponse) => sendStatus(res, 404, 'NotFound', 'the server could not find the requested resource')

export const sendMethodNotAllowed = (res: ServerResponse) =>
  sendStatus(res, 405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')
