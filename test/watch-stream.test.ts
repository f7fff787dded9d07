import { readFileSync } from 'node:fs'
import test from 'ava'
import { KubeLimitError } from '../src/kube/limits.ts'
import { decodeWatchEvent, decodeWatchStream, splitLines, WatchDecodeError } from '../src/kube/watch-stream.ts'

const bookmarkFixture = readFileSync(new URL('fixtures/kube/watch-endpointslices-bookmark.ndjson', import.meta.url))
const expiredFixture = readFileSync(new URL('fixtures/kube/watch-error-410-expired.ndjson', import.meta.url))

async function* chunked(bytes: Uint8Array, size: number) {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size)
}

test('the documented watch stream decodes to ADDED, MODIFIED, BOOKMARK, MODIFIED', async (t) => {
  const events = await Array.fromAsync(decodeWatchStream(chunked(bookmarkFixture, 1 << 20)))
  t.deepEqual(
    events.map((e) => e.type),
    ['ADDED', 'MODIFIED', 'BOOKMARK', 'MODIFIED'],
  )
  t.is((events[2]!.object as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion, '12746')
})

test('events split across chunks at every size decode the same', async (t) => {
  const whole = await Array.fromAsync(decodeWatchStream(chunked(bookmarkFixture, 1 << 20)))
  for (const size of [1, 2, 3, 7, 64, 1000]) {
    t.deepEqual(await Array.fromAsync(decodeWatchStream(chunked(bookmarkFixture, size))), whole, `chunks of ${size} bytes`)
  }
})

test('a multi-byte character split between chunks survives', async (t) => {
  const bytes = new TextEncoder().encode('{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"1"},"note":"é€"}}\n')
  const events = await Array.fromAsync(decodeWatchStream(chunked(bytes, 1)))
  t.is((events[0]!.object as { note?: string }).note, 'é€')
})

test('the ERROR event of a too-old resourceVersion carries the 410 Status', async (t) => {
  const [event] = await Array.fromAsync(decodeWatchStream(chunked(expiredFixture, 1 << 20)))
  t.is(event!.type, 'ERROR')
  t.like(event!.object, { kind: 'Status', code: 410, reason: 'Expired' })
})

test('a last line without a newline still counts', async (t) => {
  const lines = await Array.fromAsync(splitLines(chunked(new TextEncoder().encode('a\n\nb'), 1)))
  t.deepEqual(lines, ['a', 'b'])
})

test('an over-long line is refused instead of growing memory', async (t) => {
  const big = new Uint8Array(2_000).fill(0x61)
  await t.throwsAsync(Array.fromAsync(splitLines(chunked(big, 100), 1_000)), {
    instanceOf: KubeLimitError,
    message: /exceeds MAX_EVENT_BYTES \(one watch line\) \(1000 bytes\)/,
  })
})

test('malformed events name what is wrong', (t) => {
  t.throws(() => decodeWatchEvent('{"type":"ADDED"'), { instanceOf: WatchDecodeError, message: /not JSON/ })
  t.throws(() => decodeWatchEvent('{"type":"RENAMED","object":{}}'), { message: /unknown type "RENAMED"/ })
  t.throws(() => decodeWatchEvent('{"type":"ADDED"}'), { message: /ADDED watch event has no object/ })
  t.throws(() => decodeWatchEvent('[1]'), { message: /not a JSON object/ })
})
