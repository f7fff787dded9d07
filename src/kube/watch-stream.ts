/**
 * Decodes a watch response body: JSON objects, one per line (Go's json.Encoder framing), which may arrive split
 * across chunks or several to a chunk. Lines are capped so a hostile or broken server cannot grow memory
 * without bound.
 */
import { DrainCoordinatorError } from '../errors.ts'
import { WATCH_EVENT_TYPES, type WatchEvent } from './types.ts'

/** An EndpointSlice holds at most 1000 endpoints; even fully populated that is far below this. */
export const MAX_EVENT_BYTES = 16 * 1024 * 1024

export class WatchDecodeError extends DrainCoordinatorError {
  override name = 'WatchDecodeError'
  constructor(message: string, options?: ErrorOptions) {
    super('KUBE_WATCH_DECODE', message, options)
  }
}

/** Splits a byte stream into text lines; the last line counts even without a trailing newline. */
export async function* splitLines(chunks: AsyncIterable<Uint8Array>, maxLineBytes = MAX_EVENT_BYTES): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  let pending = ''
  for await (const chunk of chunks) {
    pending += decoder.decode(chunk, { stream: true })
    let newline = pending.indexOf('\n')
    while (newline !== -1) {
      const line = pending.slice(0, newline).trim()
      pending = pending.slice(newline + 1)
      if (line !== '') yield line
      newline = pending.indexOf('\n')
    }
    if (pending.length > maxLineBytes) throw new WatchDecodeError(`watch event larger than ${maxLineBytes} bytes`)
  }
  pending += decoder.decode()
  if (pending.trim() !== '') yield pending.trim()
}

/** Parses one watch line into a typed event, or throws WatchDecodeError saying what was wrong with it. */
export function decodeWatchEvent(line: string): WatchEvent {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (error) {
    throw new WatchDecodeError(`watch event is not JSON: ${JSON.stringify(line.slice(0, 80))}`, { cause: error })
  }
  if (typeof value !== 'object' || value === null) throw new WatchDecodeError('watch event is not a JSON object')
  const { type, object } = value as { type?: unknown; object?: unknown }
  if (typeof type !== 'string' || !(WATCH_EVENT_TYPES as readonly string[]).includes(type)) {
    throw new WatchDecodeError(`watch event has unknown type ${JSON.stringify(type)}`)
  }
  if (typeof object !== 'object' || object === null) throw new WatchDecodeError(`${type} watch event has no object`)
  return { type, object } as WatchEvent
}

export async function* decodeWatchStream(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<WatchEvent> {
  for await (const line of splitLines(chunks)) yield decodeWatchEvent(line)
}
