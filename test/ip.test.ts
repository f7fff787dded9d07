import test from 'ava'
import { canonicalIp, parseIpList } from '../src/ip.ts'

test('IPv6 addresses compare in canonical form, as EndpointSlices store them', (t) => {
  t.is(canonicalIp('fd00:0:0::1'), 'fd00::1')
  t.is(canonicalIp('FD00:0000:0000:0000:0000:0000:0000:0001'), 'fd00::1')
  t.is(canonicalIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1')
})

test('IPv4-mapped IPv6 addresses become dotted IPv4, as Go prints them', (t) => {
  t.is(canonicalIp('::ffff:10.0.0.7'), '10.0.0.7')
  t.is(canonicalIp('::ffff:a00:7'), '10.0.0.7')
})

test('non-addresses are rejected', (t) => {
  for (const text of ['', 'pod-a', '10.0.0.256', '10.0.0', 'fd00::1::2', '[fd00::1]', 'fe80::1%eth0'])
    t.is(canonicalIp(text), undefined, text)
})

test('POD_IP lists split on commas, canonicalize and drop duplicates', (t) => {
  t.deepEqual(parseIpList('10.1.2.3, fd00:0::5'), ['10.1.2.3', 'fd00::5'])
  t.deepEqual(parseIpList('fd00::5,fd00:0:0::5'), ['fd00::5'])
  t.is(parseIpList('10.1.2.3,nope'), undefined)
})
