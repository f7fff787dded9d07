import test from 'ava'
import { createTrafficObserver } from '../src/traffic/observer.ts'
import { fakeProc } from './helpers/fake-proc.ts'

const POD = '198.18.0.10'
const NODE = '198.18.0.1'
const CLIENT = '198.18.5.7'
const APP = { address: POD, port: 8080 }
const SIDECAR = { address: POD, port: 8099 }

function pod(options: { appPorts?: number[]; hostIps?: string[] } = {}) {
  const proc = fakeProc()
  proc.listen('0.0.0.0', 8080)
  proc.listen('::', 8099, { own: true })
  const observe = createTrafficObserver({
    read: proc.reader,
    appPorts: options.appPorts,
    hostIps: options.hostIps ?? [NODE],
    sidecarPort: 8099,
  })
  return { proc, observe }
}

test('an inbound connection to the app that stays open counts as traffic at every sample until it closes', async (t) => {
  const { proc, observe } = pod()
  const conn = proc.accept(APP, { address: CLIENT, port: 40000 })
  t.like(await observe(), { traffic: true, open: 1, appPorts: [8080] })
  t.like(await observe(), { traffic: true, open: 1, opened: 0 })
  proc.remove(conn)
  t.like(await observe(), { traffic: false, open: 0 })
})

test("the kubelet (HOST_IP), the sidecar's own port and the sidecar's own calls to the app are not traffic", async (t) => {
  const { proc, observe } = pod()
  await observe()
  proc.accept(APP, { address: NODE, port: 50000 }) // a probe of the app from the node
  proc.accept(SIDECAR, { address: NODE, port: 50001 }) // the preStop hook call
  proc.accept(SIDECAR, { address: CLIENT, port: 50002 }) // a Prometheus scrape
  proc.ownClient({ address: '127.0.0.1', port: 45000 }, { address: '127.0.0.1', port: 8080 })
  const appEnd = proc.accept({ address: '127.0.0.1', port: 8080 }, { address: '127.0.0.1', port: 45000 })
  t.like(await observe(), { traffic: false, open: 0, opened: 0, unexplainedOpens: 0 })
  // The sidecar's client socket is gone, the app's end lingers: still the sidecar's call, not traffic.
  proc.state.sockets = proc.state.sockets.filter((s) => !proc.state.own.has(s.inode) || s.state === 'LISTEN')
  proc.set(appEnd, 'TIME_WAIT')
  t.like(await observe(), { traffic: false })
})

test('a connection opened and closed between two samples that left TIME_WAIT counts once, as opened', async (t) => {
  const { proc, observe } = pod()
  await observe()
  const conn = proc.accept(APP, { address: CLIENT, port: 40001 })
  proc.set(conn, 'TIME_WAIT')
  t.like(await observe(), { traffic: true, open: 0, opened: 1, unexplainedOpens: 0 })
  t.like(await observe(), { traffic: false, opened: 0 }, 'the same TIME_WAIT socket is not new again')
})

test('PassiveOpens rising with no visible socket counts as traffic (a tcpSocket probe or a client that closed first)', async (t) => {
  const { proc, observe } = pod()
  await observe()
  proc.state.passiveOpens += 2
  t.like(await observe(), { traffic: true, unexplainedOpens: 2 })
  t.like(await observe(), { traffic: false, unexplainedOpens: 0 })
})

test('PassiveOpens rising with a visible source that is not traffic is explained, not traffic', async (t) => {
  const { proc, observe } = pod()
  await observe()
  proc.accept(SIDECAR, { address: NODE, port: 50003 })
  proc.accept(APP, { address: NODE, port: 50004 })
  t.like(await observe(), { traffic: false, unexplainedOpens: 0 })
})

test('a socket seen before the counter moved is not counted twice when it does', async (t) => {
  const { proc, observe } = pod()
  await observe()
  proc.accept(SIDECAR, { address: NODE, port: 50005 })
  proc.state.passiveOpens-- // the table read caught the socket, the counter read (which comes first) did not
  t.like(await observe(), { traffic: false })
  proc.state.passiveOpens++
  t.like(await observe(), { traffic: false, unexplainedOpens: 0 })
})

test("default app ports: listeners that are not the sidecar's and not on loopback; DRAIN_APP_PORTS narrows", async (t) => {
  const { proc, observe } = pod()
  proc.listen('127.0.0.1', 15000) // Envoy admin, reachable only from inside the pod
  proc.listen('0.0.0.0', 9090) // a metrics port
  t.deepEqual((await observe()).appPorts, [8080, 9090])
  const narrowed = createTrafficObserver({ read: proc.reader, appPorts: [8080], hostIps: [], sidecarPort: 8099 })
  proc.accept({ address: POD, port: 9090 }, { address: CLIENT, port: 40002 })
  t.like(await narrowed(), { traffic: false, appPorts: [8080] })
})

test('an app that stops listening (told to shut down) and keeps serving its keep-alive connections still has traffic', async (t) => {
  // Ports found by listening: the listener is seen once, then closed while a connection stays open.
  const discovered = pod()
  discovered.proc.accept(APP, { address: CLIENT, port: 40003 })
  t.like(await discovered.observe(), { traffic: true, open: 1 })
  discovered.proc.state.sockets = discovered.proc.state.sockets.filter((s) => !(s.state === 'LISTEN' && s.localPort === 8080))
  t.like(await discovered.observe(), { traffic: true, open: 1, appPorts: [8080] }, 'seen listening earlier in the drain')
  // DRAIN_APP_PORTS: the port is known without any listener, even one closed before the first sample.
  const configured = pod({ appPorts: [8080] })
  configured.proc.accept(APP, { address: CLIENT, port: 40004 })
  configured.proc.state.sockets = configured.proc.state.sockets.filter((s) => !(s.state === 'LISTEN' && s.localPort === 8080))
  t.like(await configured.observe(), { traffic: true, open: 1, appPorts: [8080] })
})

test('IPv6 connections in tcp6 count the same way', async (t) => {
  const { proc, observe } = pod()
  proc.listen('::', 8443)
  proc.accept({ address: 'fd00::10', port: 8443 }, { address: 'fd00::99', port: 40003 }, proc.state.v6)
  t.like(await observe(), { traffic: true, open: 1 })
})

test('a file that cannot be read makes the sample traffic; a missing tcp6 (no IPv6) does not', async (t) => {
  const { proc, observe } = pod()
  proc.state.failing.set('/proc/net/tcp6', 'ENOENT')
  t.like(await observe(), { traffic: false, sources: ['/proc/net/snmp', '/proc/net/tcp'] })
  proc.state.failing.set('/proc/net/snmp', 'EACCES')
  const sample = await observe()
  t.true(sample.traffic)
  t.deepEqual(sample.problems, ['/proc/net/snmp: EACCES'])
  proc.state.failing.delete('/proc/net/snmp')
  proc.state.failing.set('/proc/net/tcp', 'EIO')
  t.like(await observe(), { traffic: true, problems: ['/proc/net/tcp: EIO'] })
})
