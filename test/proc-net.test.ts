import { readFileSync } from 'node:fs'
import test from 'ava'
import { decodeAddress, parseSnmpTcp, parseTcpTable } from '../src/traffic/proc-net.ts'

const fixture = (name: string) => readFileSync(new URL(`fixtures/proc/${name}`, import.meta.url), 'utf8')
const ports = JSON.parse(fixture('ports.json')) as { v4: number; v6: number; dual: number }

test('IPv4 table: the listener, TIME_WAIT sockets without an inode, and an established connection', (t) => {
  const { sockets, malformed } = parseTcpTable(fixture('tcp'), true)
  t.is(malformed, 0)
  t.true(sockets.some((s) => s.state === 'LISTEN' && s.localAddress === '127.0.0.1' && s.localPort === ports.v4 && s.inode !== '0'))
  const timeWait = sockets.filter((s) => s.state === 'TIME_WAIT')
  t.true(timeWait.length >= 2)
  t.true(timeWait.every((s) => s.inode === '0' && s.remoteAddress === '127.0.0.1'))
  t.true(
    timeWait.some((s) => s.localPort === ports.v4),
    'the server side of a connection the server closed first',
  )
  t.true(
    sockets.some((s) => s.state === 'ESTABLISHED' && s.remotePort === ports.dual),
    'an IPv4 client of the dual-stack listener',
  )
})

test('IPv6 table: ::1, the dual-stack wildcard, and IPv4-mapped addresses decoded to dotted IPv4', (t) => {
  const { sockets, malformed } = parseTcpTable(fixture('tcp6'), true)
  t.is(malformed, 0)
  t.true(sockets.some((s) => s.state === 'LISTEN' && s.localAddress === '::1' && s.localPort === ports.v6))
  t.true(sockets.some((s) => s.state === 'LISTEN' && s.localAddress === '::' && s.localPort === ports.dual))
  t.true(
    sockets.some((s) => s.state === 'ESTABLISHED' && s.localAddress === '::1' && s.localPort === ports.v6 && s.remoteAddress === '::1'),
  )
  const mapped = sockets.find((s) => s.localPort === ports.dual && s.state === 'ESTABLISHED')
  t.like(mapped, { localAddress: '127.0.0.1', remoteAddress: '127.0.0.1' })
})

test('addresses: the byte order of the host decides the words; a global IPv6 address is canonical', (t) => {
  t.is(decodeAddress('0100007F', true), '127.0.0.1')
  t.is(decodeAddress('7F000001', false), '127.0.0.1')
  t.is(decodeAddress('0212C6', true), undefined)
  // 2001:db8::1 as the kernel prints it on little-endian: each 32-bit word byte-reversed.
  t.is(decodeAddress('B80D0120000000000000000001000000', true), '2001:db8::1')
  t.is(decodeAddress('20010DB8000000000000000000000001', false), '2001:db8::1')
})

test('a line not in the documented format is counted, never read as a socket', (t) => {
  const header = fixture('tcp').split('\n')[0]
  const { sockets, malformed } = parseTcpTable(`${header}\n   0: 0100007F:ZZZZ 00000000:0000 0A 0 0 0 0 0 1 1\n   1: garbage\n`, true)
  t.deepEqual(sockets, [])
  t.is(malformed, 2)
})

test('snmp: the Tcp counters by name, from the real file', (t) => {
  const counters = parseSnmpTcp(fixture('snmp'))
  t.true(Number.isInteger(counters?.PassiveOpens) && counters!.PassiveOpens! > 0)
  t.true(Number.isInteger(counters?.ActiveOpens))
  t.is(parseSnmpTcp('Ip: Forwarding\nIp: 1\n'), undefined)
  t.deepEqual(parseSnmpTcp('Tcp: ActiveOpens PassiveOpens\nTcp: 3 7\n'), { ActiveOpens: 3, PassiveOpens: 7 })
})
