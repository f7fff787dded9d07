/**
 * One sidecar's endpoint wait as the scale run starts it: its own Kubernetes client and undici connection pool,
 * its own pod identity, and a count of the response body bytes it received (LIST pages and the watch stream).
 * Used for the waits that share sim/scale.ts's process and by sim/scale-probe.ts, which runs one in a process of
 * its own.
 */
import { systemClock } from '../src/clock.ts'
import { createKubeClient } from '../src/kube/client.ts'
import { waitForEndpointRemoval } from '../src/kube/endpoint-wait.ts'
import { staticToken } from '../src/kube/token.ts'
import { silentLogger } from '../src/log.ts'
import { createFetch, type Fetch } from '../src/transport.ts'
import type { PodRef } from './control-plane.ts'

export type ScaleWait = {
  /** Resolves once the endpoint wait has finished; rejects if it failed or was aborted. */
  done: Promise<unknown>
  /** Body bytes received so far. */
  bytes(): number
  close(): Promise<void>
}

export function startScaleWait(options: {
  url: string
  pod: PodRef
  mode: 'watch' | 'poll'
  pollIntervalMs: number
  signal: AbortSignal
}): ScaleWait {
  const { url, pod, mode, pollIntervalMs, signal } = options
  const fetch = createFetch({})
  let bytes = 0
  const counting: Fetch = async (target, init) => {
    const response = await fetch(target, init)
    if (!response.body) return response
    const counter = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        bytes += chunk.byteLength
        controller.enqueue(chunk)
      },
    })
    return new Response(response.body.pipeThrough(counter), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    })
  }
  const kube = createKubeClient({
    apiUrl: url,
    namespace: 'default',
    fetch: counting,
    token: staticToken('test-token'),
    clock: systemClock,
    userAgent: 'drain-coordinator-scale',
  })
  const done = waitForEndpointRemoval(
    {
      kube,
      clock: systemClock,
      log: silentLogger,
      pod: { name: pod.name, namespace: 'default', uid: pod.uid, ips: [pod.ip] },
      mode,
      pollIntervalMs,
    },
    signal,
  )
  return { done, bytes: () => bytes, close: () => fetch.close() }
}
