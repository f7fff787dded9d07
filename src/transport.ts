/**
 * Outgoing HTTP. The only module that uses undici (through undici-lazy.ts). Each createFetch() has its own Agent: main.ts makes one for
 * the Kubernetes API (with its CA bundle) and one shared by the side calls (the app's shutdown URL, Envoy admin,
 * the readiness upstream), so the cluster CA and the API's long watches never mix with the local peers'
 * connections. Nothing touches the global dispatcher.
 *
 * undici is loaded on the first request, not at start-up: the port opens without waiting for it, and a sidecar
 * without an API server loads it only when a drain makes its first call (README, "Footprint"). A failure to load
 * it rejects that request like any transport error.
 */
import type * as Undici from './undici-lazy.ts'

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
  /**
   * Told when a request failed because the server's certificate did not verify, and awaited before the error
   * is passed on, so that a caller's retry already uses a CA bundle it re-read (see ca-bundle.ts).
   */
  onCertificateError?: (error: unknown) => Promise<unknown>
  /** Told the local address and port of every connection opened (the traffic gate's own-call exclusion). */
  onConnect?: (localAddress: string | undefined, localPort: number | undefined) => void
}

/** OpenSSL's and Node's codes for a certificate that does not chain to the CA bundle (or no longer does). */
const CERTIFICATE_ERROR_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
])

/** True when `error` (or one of its causes: undici wraps them) is a failed certificate verification. */
export function isCertificateError(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && CERTIFICATE_ERROR_CODES.has(code)) return true
  }
  return false
}

export type TransportFetch = Fetch & {
  /** Uses `ca` for new connections from now on; requests in flight finish on the connections they have. */
  setCa(ca: string): void
  close(): Promise<void>
}

let undici: Promise<typeof Undici> | undefined
const loadUndici = () => (undici ??= import('./undici-lazy.ts'))

export function createFetch({
  ca,
  connectTimeoutMs = 5_000,
  bodyTimeoutMs = 120_000,
  userAgent,
  onCertificateError,
  onConnect,
}: TransportOptions = {}): TransportFetch {
  const connector = (
    buildConnector: typeof Undici.buildConnector,
    bundle: string | undefined,
  ): Undici.buildConnector.connector | Undici.buildConnector.BuildOptions => {
    // rejectUnauthorized stays at its default (true): certificate checks are never skipped.
    const options = { timeout: connectTimeoutMs, ...(bundle === undefined ? {} : { ca: bundle }) }
    if (onConnect === undefined) return options
    const connect = buildConnector(options)
    return (opts, callback) =>
      connect(opts, (...args) => {
        // A failed connect calls back with the error alone (no socket argument at all).
        const socket = args[0] === null ? args[1] : undefined
        if (socket) {
          try {
            onConnect(socket.localAddress, socket.localPort)
          } catch {
            // Bookkeeping for the traffic gate must never break a connection.
          }
        }
        callback(...args)
      })
  }
  const agent = async (bundle: string | undefined) => {
    const { Agent, buildConnector } = await loadUndici()
    return new Agent({
      connect: connector(buildConnector, bundle),
      headersTimeout: 30_000,
      bodyTimeout: bodyTimeoutMs,
      keepAliveTimeout: 4_000,
    })
  }
  // Made on the first request; replaced (not mutated) when the CA bundle changes.
  let dispatcher: Promise<Undici.Agent> | undefined
  let currentCa = ca
  const fetch = (async (url: string, init?: RequestInit) => {
    const headers = Object.fromEntries(new Headers(init?.headers))
    if (userAgent !== undefined && headers['user-agent'] === undefined) headers['user-agent'] = userAgent
    const [{ fetch: undiciFetch }, ready] = await Promise.all([loadUndici(), (dispatcher ??= agent(currentCa))])
    try {
      // undici's RequestInit and Response are structurally the global ones; the cast stays here.
      return (await undiciFetch(url, { ...(init as object), headers, dispatcher: ready })) as unknown as Response
    } catch (error) {
      if (onCertificateError !== undefined && isCertificateError(error)) await onCertificateError(error).catch(() => {})
      throw error
    }
  }) as TransportFetch
  fetch.setCa = (bundle) => {
    currentCa = bundle
    const old = dispatcher
    dispatcher = undefined
    // close() waits for the requests in flight (a watch may run on for a minute); nothing new goes to `old`.
    void old?.then((agent) => agent.close()).catch(() => {})
  }
  fetch.close = async () => {
    if (dispatcher !== undefined) await (await dispatcher).close()
  }
  return fetch
}
