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
