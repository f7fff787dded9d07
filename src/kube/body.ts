/**
 * Reading response bodies with a byte bound. The bound counts the bytes as the client receives them after any
 * decompression (undici's fetch inflates a gzip body whatever we asked for), so a small compressed answer that
 * inflates to gigabytes is stopped at the bound, not after it is all in memory.
 */
import { UpstreamError, describeError } from '../errors.ts'
import { KubeLimitError } from './limits.ts'

/**
 * The whole body as text, or a KubeLimitError once more than `maxBytes` arrived. `signal` says why a body was
 * cut short by us (timeout, deadline); other read failures are a connection lost mid-body.
 */
export async function readBoundedText(what: string, response: Response, maxBytes: number, bound: string, signal?: AbortSignal): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN)
  // Only believed when there is no content-encoding: a gzip body's length says nothing of what it inflates to.
  if (!response.headers.has('content-encoding') && declared > maxBytes) {
    await response.body?.cancel().catch(() => {})
    throw new KubeLimitError(what, bound, maxBytes)
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
        throw new UpstreamError(what, { status: response.status, message: `connection lost while reading the body (${describeError(error)})` }, { cause: error })
      }
      if (step.done) break
      total += step.value.byteLength
      if (total > maxBytes) throw new KubeLimitError(what, bound, maxBytes)
      chunks.push(step.value)
    }
  } catch (error) {
    await reader.cancel().catch(() => {})
    throw error
  }
  return new TextDecoder().decode(Buffer.concat(chunks, total))
}

/** Like readBoundedText, but a body past the bound is cut off rather than refused: for error messages. */
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
