import test from 'ava'
import { waitForEndpointRemoval } from '../src/kube/endpoint-wait.ts'
import { captureLog } from './helpers/capture-log.ts'
import { FakeClock } from './helpers/fake-clock.ts'
import { endpointSlice, READY } from './helpers/fixtures.ts'
import { createMemoryKube } from './helpers/memory-kube.ts'
test('x', async (t) => {
  const clock = new FakeClock(); const kube = createMemoryKube(); const log = captureLog()
  const s = endpointSlice({ name: 'web-aaaaa', service: 'web', endpoints: [{ ip: '10.0.0.1', podName: 'me', uid: 'uid-me', ...READY }] })
  kube.upsert(s)
  const c = new AbortController()
  let out: unknown = 'pending'
  const w = waitForEndpointRemoval({ kube: kube.client, clock, log, pod: { name: 'me', namespace: 'default', uid: 'uid-me', ips: ['10.0.0.1'] }, mode: 'watch', pollIntervalMs: 500, random: () => 0.5 }, c.signal).then(() => out = 'resolved', (e) => out = e)
  await clock.advance(0)
  kube.upsertRaw('web-aaaaa', { ...s, endpoints: [[1]] })
  await clock.advance(30000)
  console.log(out, log.lines.map(l => JSON.stringify(l)).join('\n'))
  c.abort(new Error('d')); await w
  t.pass()
})
