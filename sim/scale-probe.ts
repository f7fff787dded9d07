/**
 * One sidecar of the scale run in a process of its own, as a real sidecar runs on its own node: the endpoint wait
 * (sim/scale-wait.ts) for one pod. Reports `resolved` (with the body bytes it received) on stdout when the wait
 * finishes, then exits. Environment: SCALE_API_URL, SCALE_POD (JSON PodRef), SCALE_MODE, SCALE_POLL_INTERVAL_MS.
 */
import { emit, now } from './common.ts'
import type { PodRef } from './control-plane.ts'
import { startScaleWait } from './scale-wait.ts'

const abort = new AbortController()
const wait = startScaleWait({
  url: process.env.SCALE_API_URL!,
  pod: JSON.parse(process.env.SCALE_POD!) as PodRef,
  mode: process.env.SCALE_MODE === 'poll' ? 'poll' : 'watch',
  pollIntervalMs: Number(process.env.SCALE_POLL_INTERVAL_MS ?? 1_000),
  signal: abort.signal,
})
emit('started')
const outcome = await wait.done.then(
  () => ({ resolvedAt: now() }),
  (error: unknown) => ({ error: String(error) }),
)
if ('resolvedAt' in outcome) emit('resolved', { resolvedAt: outcome.resolvedAt, bytes: wait.bytes() })
else emit('failed', outcome)
abort.abort(new Error('probe over'))
await wait.close().catch(() => {})
process.exit(0)
