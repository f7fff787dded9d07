import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import test from 'ava'
import { Registry, collectDefaultMetrics } from 'prom-client'
import { addProcessMetrics, createMetrics, DURATION_BUCKETS } from '../src/metrics.ts'

const run = promisify(execFile)

async function promtoolCheck(text: string): Promise<{ ok: boolean; output: string }> {
  const child = run('promtool', ['check', 'metrics'])
  child.child.stdin!.end(text)
  try {
    const { stdout, stderr } = await child
    return { ok: true, output: stdout + stderr }
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string }
    return { ok: false, output: stdout + stderr }
  }
}

test('the required series exist before the first drain, zeroed', async (t) => {
  const metrics = createMetrics(new Registry(), { version: '1.2.3' })
  const text = await metrics.render()
  for (const line of [
    'drain_coordinator_drains_total{outcome="completed"} 0',
    'drain_coordinator_drains_total{outcome="timeout"} 0',
    'drain_coordinator_draining 0',
    'drain_coordinator_kube_api_requests_total{verb="list",code="200"} 0',
    'drain_coordinator_kube_api_requests_total{verb="watch",code="200"} 0',
    'drain_coordinator_phase_failures_total{phase="endpoints"} 0',
    'drain_coordinator_build_info{version="1.2.3"} 1',
  ]) {
    t.true(text.split('\n').includes(line), line)
  }
  t.regex(text, /# TYPE drain_coordinator_drain_duration_seconds histogram/)
  t.regex(text, /# TYPE drain_coordinator_phase_duration_seconds histogram/)
  for (const outcome of ['completed', 'timeout'])
    t.true(text.includes(`drain_coordinator_drain_duration_seconds_count{outcome="${outcome}"} 0`), outcome)
  for (const phase of ['app', 'envoy', 'endpoints', 'settle'])
    t.true(text.includes(`drain_coordinator_phase_duration_seconds_count{phase="${phase}"} 0`), phase)
})

test('histogram buckets span 10 ms to 60 s', (t) => {
  t.is(DURATION_BUCKETS[0], 0.01)
  t.is(DURATION_BUCKETS.at(-1), 60)
})

test('promtool check metrics passes on the output after a drain, with the Node process metrics', async (t) => {
  const registry = new Registry()
  const metrics = createMetrics(registry, { version: '1.2.3' })
  addProcessMetrics(registry, collectDefaultMetrics)
  metrics.drainStarted()
  metrics.phaseFinished('endpoints', 0.42)
  metrics.phaseFinished('settle', 5)
  metrics.kubeRequest('list', 200)
  metrics.kubeRequest('watch', 'error')
  metrics.drainFinished('completed', 5.43)
  const text = await metrics.render()
  t.regex(text, /^process_resident_memory_bytes \d+/m)
  t.regex(text, /drain_coordinator_kube_api_requests_total\{verb="watch",code="error"\} 1/)
  const { ok, output } = await promtoolCheck(text)
  t.true(ok, output)
  t.is(output.trim(), '', `promtool found problems:\n${output}`)
})

test('promtool would catch a broken exposition (the check itself can fail)', async (t) => {
  const { ok, output } = await promtoolCheck('# TYPE broken counter\nbroken{le= 1\n')
  t.false(ok)
  // The parser's own complaint: a missing or crashing promtool would fail differently.
  t.regex(output, /parsing error in line 2/)
})
