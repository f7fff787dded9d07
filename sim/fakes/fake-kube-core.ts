/**
 * The core v1 part of the fake API server (fake-kube.ts): GET one Pod (for the grace budget) and POST Events (the
 * drain's Events), nothing else; either can be refused with a status.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { sidecarUser } from './fake-kube-auth.ts'
import { sendNotFound, sendStatus } from './fake-kube-status.ts'

export type CoreResource = 'pods' | 'events'

/** `nextResourceVersion`: the server's counter, which a created Event moves on as any write does. */
export function createCoreApi(namespace: string, nextResourceVersion: () => number) {
  const pods = new Map<string, unknown>()
  const events: Array<Record<string, any>> = []
  const refused = new Map<CoreResource, number>()

  /** `rest`: the path after /api/v1/namespaces/NAMESPACE/. A refused resource answers with its status. */
  async function serve(req: IncomingMessage, res: ServerResponse, rest: string) {
    const [resource, name] = rest.split('/') as [string, string | undefined]
    const refusal = refused.get(resource as CoreResource)
    const verb = resource === 'events' ? 'create' : 'get'
    if (refusal !== undefined) {
      return sendStatus(
        res,
        refusal,
        refusal === 403 ? 'Forbidden' : 'InternalError',
        `${resource} is forbidden: User "${sidecarUser(namespace)}" cannot ${verb} resource "${resource}" in API group "" in the namespace "${namespace}"`,
      )
    }
    if (resource === 'pods' && name !== undefined && req.method === 'GET') {
      const pod = pods.get(name)
      if (pod === undefined) return sendStatus(res, 404, 'NotFound', `pods "${name}" not found`)
      res.writeHead(200, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify(pod))
    }
    if (resource === 'events' && name === undefined && req.method === 'POST') {
      let text = ''
      for await (const chunk of req) text += chunk
      const event = JSON.parse(text) as Record<string, any>
      events.push(event)
      res.writeHead(201, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify({ ...event, metadata: { ...event.metadata, resourceVersion: String(nextResourceVersion()) } }))
    }
    sendNotFound(res)
  }

  return {
    serve,
    /** Events POSTed so far, as received. */
    events,
    /** Stores a Pod (any JSON: tests send malformed ones too) under `name`. */
    setPod(name: string, pod: unknown) {
      pods.set(name, pod)
    },
    /** Answer this resource with `status` from now on. */
    refuse(resource: CoreResource, status: number) {
      refused.set(resource, status)
    },
  }
}
