/**
 * LIST on the fake API server (fake-kube.ts): label and field selectors, and pages (limit/continue) that read the
 * store as it was at the first page's resourceVersion, with continue tokens that expire as the API server's do.
 */
import type { ServerResponse } from 'node:http'
import type { Matcher, SliceStore } from './fake-kube-store.ts'
import { sendJson, sendStatus } from './fake-kube-status.ts'
import { parseFieldSelector } from './field-selector.ts'
import { parseLabelSelector } from './label-selector.ts'

const CONTINUE_EXPIRED =
  'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.'

/** The request's labelSelector and fieldSelector as one Matcher; throws with the API server's message if either is bad. */
export function selectorMatcher(query: URLSearchParams): Matcher {
  const labels = parseLabelSelector(query.get('labelSelector') ?? '')
  const fields = parseFieldSelector(query.get('fieldSelector') ?? '')
  return (labelSet, object) => labels(labelSet) && fields(object)
}

export function createLister(store: SliceStore) {
  let continueExpiries = 0

  function serve(res: ServerResponse, query: URLSearchParams, matches: Matcher) {
    const limit = Number(query.get('limit') ?? 0)
    let offset = 0
    let listVersion = store.resourceVersion
    const token = query.get('continue')
    if (token) {
      const decoded = JSON.parse(Buffer.from(token, 'base64url').toString()) as { rv: number; offset: number }
      if (decoded.rv < store.oldestWatchable || continueExpiries > 0) {
        continueExpiries = Math.max(0, continueExpiries - 1)
        return sendStatus(res, 410, 'Expired', CONTINUE_EXPIRED)
      }
      offset = decoded.offset
      listVersion = decoded.rv
    }
    const all = store.select(matches)
    const page = limit > 0 ? all.slice(offset, offset + limit) : all.slice(offset)
    const more = limit > 0 && offset + limit < all.length
    // List items carry no kind/apiVersion: the API server leaves TypeMeta off them.
    const items = page.map((slice) => {
      const { kind: _kind, apiVersion: _apiVersion, ...rest } = slice
      return rest
    })
    sendJson(res, 200, {
      kind: 'EndpointSliceList',
      apiVersion: 'discovery.k8s.io/v1',
      metadata: {
        resourceVersion: String(listVersion),
        ...(more
          ? {
              continue: Buffer.from(JSON.stringify({ rv: listVersion, offset: offset + limit })).toString('base64url'),
              remainingItemCount: all.length - offset - limit,
            }
          : {}),
      },
      items,
    })
  }

  return {
    serve,
    /** The next `count` pages asked for with a continue token get HTTP 410 (the revision was compacted). */
    expireContinueTokens(count: number) {
      continueExpiries += count
    },
  }
}
