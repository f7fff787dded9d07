/**
 * The project's error classes. Each carries a stable `code` and the standard `cause`, and a message that says
 * what was being done, to which URL, with which status; never a token or a header value.
 */

export class DrainCoordinatorError extends Error {
  override name = 'DrainCoordinatorError'
  readonly code: string
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
  }
}

/** Bad configuration: names the variable, the value and what is accepted. */
export class ConfigError extends DrainCoordinatorError {
  override name = 'ConfigError'
  readonly variable: string
  constructor(variable: string, value: string, accepts: string) {
    super('DRAIN_CONFIG_INVALID', `${variable}=${JSON.stringify(value)} is not valid: expected ${accepts}`)
    this.variable = variable
  }
}

/** A peer (Kubernetes API, Envoy admin, the app) answered with an unexpected status, or not at all. */
export class UpstreamError extends DrainCoordinatorError {
  override name = 'UpstreamError'
  readonly status: number | undefined
  /** Milliseconds the peer asked us to wait (Retry-After), when it said. */
  readonly retryAfterMs: number | undefined
  /** Kubernetes Status `reason` (Expired, Forbidden, ...) when the body was a Status. */
  readonly reason: string | undefined
  constructor(what: string, detail: { status?: number; retryAfterMs?: number; reason?: string; message?: string }, options?: ErrorOptions) {
    const code = detail.status === undefined ? 'UPSTREAM_UNREACHABLE' : 'UPSTREAM_HTTP_STATUS'
    const status = detail.status === undefined ? 'failed' : `failed with status ${detail.status}`
    const tail = detail.message ? `: ${detail.message}` : ''
    super(code, `${what} ${status}${tail}`, options)
    this.status = detail.status
    this.retryAfterMs = detail.retryAfterMs
    this.reason = detail.reason
  }
}

/** A short, loggable description of any thrown value (errors from undici nest the useful part in `cause`). */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : ''
  return `${error.message}${cause}`
}
