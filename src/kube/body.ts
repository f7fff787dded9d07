/**
 * Reading response bodies with a byte bound. The bound counts the bytes as the client receives them after any
 * decompression (undici's fetch inflates a gzip body whatever we asked for), so a small compressed answer that
 * inflates to gigabytes is stopped at the bound, not after it is all in memory.
 */
import { readBodyText } from '../bounded-body.ts'
import { KubeLimitError } from './limits.ts'

/** The whole body as text, or a KubeLimitError naming `bound` once more than `maxBytes` arrived. */
export function readBoundedText(what: string, response: Response, maxBytes: number, bound: string, signal?: AbortSignal): Promise<string> {
  return readBodyText(what, response, maxBytes, signal, () => new KubeLimitError(what, bound, maxBytes))
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
