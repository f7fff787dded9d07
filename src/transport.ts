/**
 * Outgoing HTTP. The only module that imports undici. Each createFetch() has its own Agent: main.ts makes one for
 * the Kubernetes API (with its CA bundle) and one shared by the side calls (the app's shutdown URL, Envoy admin,
 * the readiness upstream), so the cluster CA and the API's long watches never mix with the local peers'
 * connections. Nothing touches the global dispatcher.
 *
 * undici is loaded on the first request, not at start-up: the port opens without waiting for it, and a sidecar
 * without an API server loads it only when a drain makes its first call (README, "Footprint"). A failure to load
 * it rejects that request like any transport error.
 */
import type * as Undici from 'undici'

/** The fetch shape every client in src/ takes; tests pass in-process or loopback fakes. */
export type Fetch = (url: string, init?: RequestInit) => Promise<Response>

export type TransportOptions = {
  /** PEM CA bundle the server certificate must chain to; undefined: the system roots (Node's default). */
  ca?: string | undefined
  /** Time to wait for a TCP (and TLS) connection. */
  connectTimeoutMs?: number
  /** Longest silence allowed inside a response body; a watch stays open much longer than a LIST. */
  bodyTimeoutMs?: number
  /** Sent on every request that sets no User-Agent of its own. */
  userAgent?: string
}

let undici: Promise<typeof Undici> | undefined
const loadUndici = () => (undici ??= import('undici'))

export function createFetch({ ca, connectTimeoutMs = 5_000, bodyTimeoutMs = 120_000, userAgent }: TransportOptions = {}): Fetch & { close(): Promise<void> } {
  let dispatcher: Promise<Undici.Agent> | undefined
  const agent = () =>
    (dispatcher ??= loadUndici().then(
      ({ Agent }) =>
        new Agent({
          // rejectUnauthorized stays at its default (true): certificate checks are never skipped.
          connect: { timeout: connectTimeoutMs, ...(ca === undefined ? {} : { ca }) },
          headersTimeout: 30_000,
          bodyTimeout: bodyTimeoutMs,
          keepAliveTimeout: 4_000,
        }),
    ))
  const fetch = (async (url: string, init?: RequestInit) => {
    const headers = Object.fromEntries(new Headers(init?.headers))
    if (userAgent !== undefined && headers['user-agent'] === undefined) headers['user-agent'] = userAgent
    const [{ fetch: undiciFetch }, dispatcherReady] = await Promise.all([loadUndici(), agent()])
    // undici's RequestInit and Response are structurally the global ones; the cast stays here.
    return undiciFetch(url, { ...(init as object), headers, dispatcher: dispatcherReady }) as unknown as Promise<Response>
  }) as Fetch & { close(): Promise<void> }
  fetch.close = async () => {
    if (dispatcher !== undefined) await (await dispatcher).close()
  }
  return fetch
}
