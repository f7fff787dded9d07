/**
 * The app's shutdown POST and Envoy's drain (src/side-calls.ts): the status decides, and only the first bytes of an
 * answer are read, for the error message, so a peer answering without end can neither stall the call nor fill the
 * sidecar's memory.
 */
import test from 'ava'
import { postExpectingSuccess } from '../src/side-calls.ts'
import type { Fetch } from '../src/transport.ts'

/** A fetch answering `status` with a body that never ends; counts the bytes anyone pulled from it. */
function endlessAnswer(status: number) {
  let pulledBytes = 0
  const fetch: Fetch = async () =>
    new Response(
      new ReadableStream({
        pull: (c) => {
          pulledBytes += 64 * 1024
          c.enqueue(new Uint8Array(64 * 1024).fill(120))
        },
      }),
      { status },
    )
  return { fetch, pulled: () => pulledBytes }
}

const never = new AbortController().signal

test('a 2xx with an endless body is success at once, and the body is barely read', async (t) => {
  const peer = endlessAnswer(202)
  t.is(await postExpectingSuccess(peer.fetch, 'app shutdown', 'http://127.0.0.1:8080/shutdown', never), 202)
  t.true(peer.pulled() <= 256 * 1024, `pulled ${peer.pulled()} bytes`)
})

test('an error status with an endless body fails with the status and the start of the body, read no further', async (t) => {
  const peer = endlessAnswer(500)
  const error = await t.throwsAsync(postExpectingSuccess(peer.fetch, 'app shutdown', 'http://127.0.0.1:8080/shutdown', never))
  t.regex(error!.message, /app shutdown: POST http:\/\/127\.0\.0\.1:8080\/shutdown/)
  t.regex(error!.message, /500/)
  t.regex(error!.message, /xxxx/)
  t.true(peer.pulled() <= 256 * 1024, `pulled ${peer.pulled()} bytes`)
})
