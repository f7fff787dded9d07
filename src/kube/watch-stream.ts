/**
 * Decodes a watch response body: JSON objects, one per line (Go's json.Encoder framing), which may arrive split
 * across chunks or several to a chunk. Linear in the bytes received: each byte is searched for a newline once (a
 * line's earlier chunks are kept as they came, never re-scanned), and a line is refused once it passes its bound,
 * so a hostile server can neither grow memory nor stall the event loop with a line that never ends.
 */
import { DrainCoordinatorError } from '../errors.ts'
import { KubeLimitError, MAX_EVENT_BYTES } from './limits.ts'
import { WATCH_EVENT_TYPES, type WatchEvent } from './types.ts'

export { MAX_EVENT_BYTES }

export class WatchDecodeError extends DrainCoordinatorError {
  override name = 'WatchDecodeError'
  constructor(message: string, options?: ErrorOptions) {
    super('KUBE_WATCH_DECODE', message, options)
  }
}

const NEWLINE = 0x0a

/** Splits a byte stream into text lines; the last line counts even without a trailing newline. */
export async function* splitLines(chunks: AsyncIterable<Uint8Array>, maxLineBytes = MAX_EVENT_BYTES): AsyncGenerator<string> {
  // UTF-8 never uses 0x0a inside a multi-byte character, so splitting bytes at newlines keeps characters whole.
  const decoder = new TextDecoder()
  let pending: Uint8Array[] = []
  let pendingBytes = 0
  const take = (tail: Uint8Array): string | undefined => {
    const bytes = pending.length === 0 ? tail : Buffer.concat([...pending, tail], pendingBytes + tail.byteLength)
    pending = []
    pendingBytes = 0
    const line = decoder.decode(bytes).trim()
    return line === '' ? undefined : line
  }
  for await (const chunk of chunks) {
    let start = 0
    for (let newline = chunk.indexOf(NEWLINE); newline !== -1; newline = chunk.indexOf(NEWLINE, start)) {
      if (pendingBytes + newline - start > maxLineBytes) throw lineTooLong(maxLineBytes)
      const line = take(chunk.subarray(start, newline))
      start = newline + 1
      if (line !== undefined) yield line
    }
    if (start < chunk.byteLength) {
      pendingBytes += chunk.byteLength - start
      if (pendingBytes > maxLineBytes) throw lineTooLong(maxLineBytes)
      // A copy when the rest is a small part of a large chunk, so the chunk itself can be freed.
      pending.push(start === 0 ? chunk : chunk.slice(start))
    }
  }
  const last = take(new Uint8Array(0))
  if (last !== undefined) yield last
}

const lineTooLong = (max: number) => new KubeLimitError('WATCH endpointslices', 'MAX_EVENT_BYTES (one watch line)', max)

/** Parses one watch line into an event whose type is known and whose object is an object (not validated yet). */
export function decodeWatchEvent(line: string): WatchEvent {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (error) {
    throw new WatchDecodeError(`watch event is not JSON: ${JSON.stringify(line.slice(0, 80))}`, { cause: error })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new WatchDecodeError('watch event is not a JSON object')
  const { type, object } = value as { type?: unknown; object?: unknown }
  if (typeof type !== 'string' || !(WATCH_EVENT_TYPES as readonly string[]).includes(type)) {
    throw new WatchDecodeError(`watch event has unknown type ${typeof type === 'string' ? JSON.stringify(type.slice(0, 40)) : typeof type}`)
  }
  if (typeof object !== 'object' || object === null || Array.isArray(object))
    throw new WatchDecodeError(`${type} watch event has no object`)
  return { type, object } as WatchEvent
}

export async function* decodeWatchStream(chunks: AsyncIterable<Uint8Array>, maxLineBytes = MAX_EVENT_BYTES): AsyncGenerator<WatchEvent> {
  for await (const line of splitLines(chunks, maxLineBytes)) yield decodeWatchEvent(line)
}
