/**
 * A response body read with a byte bound, for the sidecar's side calls (Envoy's stats, the app's metrics). The
 * bound counts decoded bytes as they arrive (undici inflates a gzip body whatever was asked for), so a small
 * compressed answer that inflates to gigabytes is stopped at the bound, not after it is all in memory. The
 * Kubernetes client reads through it too (kube/body.ts), with its own error for a bound that was hit.
 */
import { DrainCoordinatorError, UpstreamError, describeError } from './errors.ts'

/** More than `limitBytes` arrived: the answer was abandoned. */
export class BodyTooLargeError extends DrainCoordinatorError {
  override name = 'BodyTooLargeError'
  readonly limitBytes: number
  constructor(what: string, limitBytes: number) {
    super('BODY_TOO_LARGE', `${what}: answer exceeds ${limitBytes} bytes; abandoned`)
    this.limitBytes = limitBytes
  }
}

/**
 * The whole body as text, or `tooLarge()` (a BodyTooLargeError by default) once more than `maxBytes` arrived. When
 * `signal` has aborted, a failed read rethrows its reason (our timeout), otherwise it is a connection lost mid-body.
 */
export async function readBodyText(
  what: string,
  response: Response,
  maxBytes: number,
  signal?: AbortSignal,
  tooLarge: () => Error = () => new BodyTooLargeError(what, maxBytes),
): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN)
  // Believed only without content-encoding: a gzip body's length says nothing of what it inflates to.
  if (!response.headers.has('content-encoding') && declared > maxBytes) {
    await response.body?.cancel().catch(() => {})
    throw tooLarge()
  }
  if (response.body === null) return ''
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  try {
    for (;;) {
      let step: Awaited<ReturnType<typeof reader.read>>
      try {
        step = await reader.read()
      } catch (error) {
        if (signal?.aborted) throw signal.reason
        throw new UpstreamError(
          what,
          { status: response.status, message: `connection lost while reading the body (${describeError(error)})` },
          { cause: error },
        )
      }
      if (step.done) break
      total += step.value.byteLength
      if (total > maxBytes) throw tooLarge()
      chunks.push(step.value)
    }
  } catch (error) {
    await reader.cancel().catch(() => {})
    throw error
  }
  return new TextDecoder().decode(Buffer.concat(chunks, total))
}

/** At most the first `maxBytes` of a body, the rest cut off rather than refused: for error messages. */
export async function readTextPrefix(response: Response, maxBytes: number): Promise<string> {
  if (response.body === null) return ''
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  try {
    while (total < maxBytes) {
      const step = await reader.read()
      if (step.done) break
      chunks.push(step.value)
      total += step.value.byteLength
    }
  } catch {
    // Whatever arrived is the message; a broken body does not hide the status.
  } finally {
    await reader.cancel().catch(() => {})
  }
  return new TextDecoder().decode(Buffer.concat(chunks, total).subarray(0, maxBytes))
}
