import { readFileSync } from 'node:fs'
import test from 'ava'
import type { PodIdentity } from '../src/config.ts'
import { endpointStateIn } from '../src/kube/endpoint-slice.ts'
import type { EndpointSliceList } from '../src/kube/types.ts'
import { endpointSlice, READY, TERMINATING, TERMINATING_PUBLISHED } from '../sim/fakes/fixtures.ts'

const pod = (over: Partial<PodIdentity> = {}): PodIdentity => ({
  name: 'web-1',
  namespace: 'default',
  uid: 'uid-1',
  ips: ['10.0.0.1'],
  ...over,
})
const list = JSON.parse(
  readFileSync(new URL('fixtures/kube/endpointslice-list-terminating.json', import.meta.url), 'utf8'),
) as EndpointSliceList

test('the terminating pod of the documented list is not ready, its neighbour is', (t) => {
  const [slice] = list.items!
  t.is(endpointStateIn(slice!, pod({ uid: '66fa831c-7eb2-407f-bd2c-f96dfe841478', name: undefined, ips: [] })), 'not-ready')
  t.is(endpointStateIn(slice!, pod({ uid: '722b1cbe-dcd7-4ed4-8928-4a4d0e2bbe35', name: undefined, ips: [] })), 'ready')
})

test('a placeholder slice with "endpoints": null holds nothing', (t) => {
  const placeholder = list.items![1]!
  t.is(placeholder.endpoints, null)
  t.is(endpointStateIn(placeholder, pod()), 'absent')
})

test('the pod is found by targetRef.uid, by targetRef name, or by address', (t) => {
  const byUid = endpointSlice({ name: 's', endpoints: [{ ip: '10.9.9.9', uid: 'uid-1', ...READY }] })
  const byName = endpointSlice({ name: 's', endpoints: [{ ip: '10.9.9.9', podName: 'web-1', ...READY }] })
  const byIp = endpointSlice({ name: 's', endpoints: [{ ip: '10.0.0.1', ...READY }] })
  const other = endpointSlice({ name: 's', endpoints: [{ ip: '10.9.9.9', podName: 'web-2', uid: 'uid-2', ...READY }] })
  t.is(endpointStateIn(byUid, pod({ name: undefined, ips: [] })), 'ready')
  t.is(endpointStateIn(byName, pod({ uid: undefined, ips: [] })), 'ready')
  t.is(endpointStateIn(byIp, pod({ uid: undefined, name: undefined })), 'ready')
  t.is(endpointStateIn(other, pod()), 'absent')
})

test('a same-named pod with another UID (a previous StatefulSet incarnation) is not this pod', (t) => {
  const previous = endpointSlice({ name: 's', endpoints: [{ ip: '10.9.9.9', podName: 'web-1', uid: 'uid-old', ...READY }] })
  t.is(endpointStateIn(previous, pod({ ips: [] })), 'absent')
})

test('an absent ready condition means ready, as the API documents', (t) => {
  const slice = endpointSlice({ name: 's', endpoints: [{ ip: '10.0.0.1' }] })
  t.deepEqual(slice.endpoints![0]!.conditions, {})
  t.is(endpointStateIn(slice, pod()), 'ready')
})

test('ready:false means not ready, whatever serving says', (t) => {
  t.is(endpointStateIn(endpointSlice({ name: 's', endpoints: [{ ip: '10.0.0.1', ...TERMINATING }] }), pod()), 'not-ready')
  t.is(endpointStateIn(endpointSlice({ name: 's', endpoints: [{ ip: '10.0.0.1', ready: false, serving: false }] }), pod()), 'not-ready')
})

test('ready:true with terminating:true (publishNotReadyAddresses) is its own state and does not hold traffic', (t) => {
  t.is(endpointStateIn(endpointSlice({ name: 's', endpoints: [{ ip: '10.0.0.1', ...TERMINATING_PUBLISHED }] }), pod()), 'terminating-ready')
})

test('IPv6 addresses match whatever way POD_IP spells them', (t) => {
  const slice = endpointSlice({ name: 's', addressType: 'IPv6', endpoints: [{ ip: 'fd00::5', ...READY }] })
  t.is(endpointStateIn(slice, pod({ uid: undefined, name: undefined, ips: ['fd00::5'] })), 'ready')
})
