/**
 * A pod's network namespace as the traffic observer reads it: a socket list and a PassiveOpens counter, rendered
 * as /proc/net/tcp, tcp6 and snmp text in the kernel's own format (host byte order), plus the inodes "this
 * process" holds. Tests change it between samples.
 */
import { isIPv4 } from 'node:net'
import type { ProcReader } from '../../src/traffic/observer.ts'
import { TCP_STATES, type TcpSocket, type TcpState } from '../../src/traffic/proc-net.ts'

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1
const STATE_NUMBER = Object.fromEntries(Object.entries(TCP_STATES).map(([n, name]) => [name, Number(n)])) as Record<TcpState, number>

function addressBytes(ip: string): number[] {
  if (isIPv4(ip)) return ip.split('.').map(Number)
  const [head = '', tail = ''] = ip.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === '' ? [] : tail.split(':')
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h
  return groups.flatMap((g) => [Number.parseInt(g, 16) >> 8, Number.parseInt(g, 16) & 255])
}

function hexAddress(ip: string, v6: boolean): string {
  // An IPv4 socket in the IPv6 table is IPv4-mapped.
  const bytes = v6 && isIPv4(ip) ? [...Array(10).fill(0), 255, 255, ...addressBytes(ip)] : addressBytes(ip)
  let out = ''
  for (let i = 0; i < bytes.length; i += 4) {
    const word = bytes.slice(i, i + 4)
    out += (LITTLE_ENDIAN ? word.reverse() : word).map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join('')
  }
  return out
}

const hexPort = (port: number) => port.toString(16).toUpperCase().padStart(4, '0')

function render(sockets: TcpSocket[], v6: boolean): string {
  const header = v6
    ? '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode'
    : '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode'
  const lines = sockets.map(
    (s, i) =>
      `${String(i).padStart(4)}: ${hexAddress(s.localAddress, v6)}:${hexPort(s.localPort)} ${hexAddress(s.remoteAddress, v6)}:${hexPort(s.remotePort)} ${STATE_NUMBER[s.state].toString(16).toUpperCase().padStart(2, '0')} 00000000:00000000 00:00000000 00000000     0        0 ${s.inode} 1 0000000000000000 20 0 0 10 -1`,
  )
  return `${[header, ...lines].join('\n')}\n`
}

export function fakeProc() {
  let inode = 1000
  const state = {
    sockets: [] as TcpSocket[],
    passiveOpens: 100,
    own: new Set<string>(),
    /** Paths that fail to read, with the error code. */
    failing: new Map<string, string>(),
    v6: [] as TcpSocket[],
  }
  const add = (s: Omit<TcpSocket, 'inode'> & { inode?: string }, table: TcpSocket[] = state.sockets) => {
    const socket = { inode: String(inode++), ...s }
    table.push(socket)
    return socket
  }
  const reader: ProcReader = {
    async readFile(path) {
      const code = state.failing.get(path)
      if (code !== undefined) throw Object.assign(new Error(`${code}: ${path}`), { code })
      if (path === '/proc/net/tcp') return render(state.sockets, false)
      if (path === '/proc/net/tcp6') return render(state.v6, true)
      if (path === '/proc/net/snmp') {
        return `Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab\nTcp: 1 200 120000 -1 40 ${state.passiveOpens} 0 0 3\n`
      }
      throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' })
    },
    ownSocketInodes: async () => state.own,
  }
  return {
    state,
    reader,
    listen(address: string, port: number, { own = false } = {}) {
      const s = add({
        localAddress: address,
        localPort: port,
        remoteAddress: address.includes(':') ? '::' : '0.0.0.0',
        remotePort: 0,
        state: 'LISTEN',
      })
      if (own) state.own.add(s.inode)
      return s
    },
    /** A connection accepted by the listener on `to`: the server-side socket, and PassiveOpens counts it. */
    accept(to: { address: string; port: number }, from: { address: string; port: number }, table: TcpSocket[] = state.sockets) {
      state.passiveOpens++
      return add(
        { localAddress: to.address, localPort: to.port, remoteAddress: from.address, remotePort: from.port, state: 'ESTABLISHED' },
        table,
      )
    },
    /** This process's client socket (the sidecar's own call). */
    ownClient(from: { address: string; port: number }, to: { address: string; port: number }) {
      const s = add({
        localAddress: from.address,
        localPort: from.port,
        remoteAddress: to.address,
        remotePort: to.port,
        state: 'ESTABLISHED',
      })
      state.own.add(s.inode)
      return s
    },
    set(socket: TcpSocket, next: TcpState) {
      socket.state = next
      if (next === 'TIME_WAIT') socket.inode = '0'
    },
    remove(socket: TcpSocket) {
      state.sockets = state.sockets.filter((s) => s !== socket)
      state.v6 = state.v6.filter((s) => s !== socket)
    },
  }
}
