/**
 * A Fetch for fake-clock tests of the app and Envoy calls: records each call and answers as scripted: a status,
 * a transport error, or nothing at all until the caller's signal aborts (a hung peer).
 */
import type { Fetch } from '../../src/transport.ts'

export type Script = { kind: 'status'; status: number } | { kind: 'refused' } | { kind: 'hang' }

export function scriptedFetch(initial: Script = { kind: 'status', status: 200 }) {
  let script = initial
  const calls: Array<{ url: string; method: string }> = []
  const fetch: Fetch = (url, init) => {
    calls.push({ url, method: init?.method ?? 'GET' })
    const signal = init?.signal ?? undefined
    if (script.kind === 'status') return Promise.resolve(new Response(script.status < 300 ? 'OK\n' : 'no\n', { status: script.status }))
    if (script.kind === 'refused')
      return Promise.reject(new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:9901') }))
    return new Promise((_resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason)
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true })
    })
  }
  return {
    fetch,
    calls,
    set(next: Script) {
      script = next
    },
  }
}
