/**
 * The simulator's view of a sidecar it started as a child process (sim/common.ts startChild): when it is healthy,
 * and its JSON log lines. Shared by the loopback scenario (sim/scenario.ts) and the kube-proxy one (sim/data-plane.ts).
 */
import { type Child, now, sleep } from './common.ts'

/** Resolves once `url` (the sidecar's /healthz) answers 2xx; throws if the sidecar exits first or `timeoutMs` passes. */
export async function untilHealthy(sidecar: Child, url: string, timeoutMs: number): Promise<void> {
  const until = now() + timeoutMs
  while (now() < until) {
    if (sidecar.hasExited()) throw new Error(`${sidecar.name} exited: ${sidecar.stderr()}`)
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) return
    await sleep(50)
  }
  throw new Error(`${sidecar.name} not healthy within ${timeoutMs / 1_000} s: ${sidecar.stderr()}`)
}

/** The sidecar's log lines so far, parsed; lines that are not JSON objects are left out. */
export function sidecarLogs(sidecar: Child | undefined): Array<Record<string, unknown>> {
  if (!sidecar) return []
  const out: Array<Record<string, unknown>> = []
  for (const line of sidecar.lines) {
    try {
      const parsed: unknown = JSON.parse(line)
      if (parsed !== null && typeof parsed === 'object') out.push(parsed as Record<string, unknown>)
    } catch {
      // not a log line
    }
  }
  return out
}
