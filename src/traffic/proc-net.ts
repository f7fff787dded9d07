/**
 * Parsers for the kernel's TCP views in /proc/net (the pod's network namespace, which the sidecar shares). Pure:
 * they take the file's text and return plain values; reading the files is the caller's injected reader's job.
 *
 * /proc/net/tcp and tcp6 (net/ipv4/tcp_ipv4.c get_tcp4_sock, net/ipv6/tcp_ipv6.c get_tcp6_sock): one socket per
 * line, `sl local_address rem_address st ... uid timeout inode ...`. Addresses are the raw network-order bytes
 * printed as host-order 32-bit words in hex (so 127.0.0.1 is 0100007F on little-endian machines), ports are
 * plain hex. /proc/net/snmp: pairs of lines per protocol, a header line of names and a line of values.
 */
import { canonicalIp } from '../ip.ts'

/** The TCP states of include/net/tcp_states.h, by their number in the `st` column. */
export const TCP_STATES = {
  1: 'ESTABLISHED',
  2: 'SYN_SENT',
  3: 'SYN_RECV',
  4: 'FIN_WAIT1',
  5: 'FIN_WAIT2',
  6: 'TIME_WAIT',
  7: 'CLOSE',
  8: 'CLOSE_WAIT',
  9: 'LAST_ACK',
  10: 'LISTEN',
  11: 'CLOSING',
  12: 'NEW_SYN_RECV',
} as const
export type TcpState = (typeof TCP_STATES)[keyof typeof TCP_STATES]

export type TcpSocket = {
  localAddress: string
  localPort: number
  remoteAddress: string
  remotePort: number
  state: TcpState
  /** '0' for sockets no process holds any more (TIME_WAIT, request sockets). */
  inode: string
}

/** The host's byte order decides how the kernel printed each 32-bit word. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/** One address column (`0100007F` or 32 hex digits) as a canonical IP; IPv4-mapped IPv6 comes out dotted. */
export function decodeAddress(hex: string, littleEndian = LITTLE_ENDIAN): string | undefined {
  if (!/^(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{32})$/.test(hex)) return undefined
  const bytes: number[] = []
  for (let word = 0; word < hex.length; word += 8) {
    const wordBytes = [0, 2, 4, 6].map((i) => Number.parseInt(hex.slice(word + i, word + i + 2), 16))
    bytes.push(...(littleEndian ? wordBytes.reverse() : wordBytes))
  }
  if (bytes.length === 4) return bytes.join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16))
  return canonicalIp(groups.join(':'))
}

/** One socket line, addresses still in the kernel's hex: decoding every line of a busy table costs too much. */
export type TcpRow = { localHex: string; localPort: number; remoteHex: string; remotePort: number; state: TcpState; inode: string }

/**
 * Every socket line of /proc/net/tcp or tcp6, addresses undecoded (see decodeRow). Lines that do not have the
 * documented shape are counted in `malformed` (the caller treats them as traffic), never silently dropped.
 */
export function parseTcpRows(text: string): { rows: TcpRow[]; malformed: number } {
  const rows: TcpRow[] = []
  let malformed = 0
  let start = text.indexOf('\n') + 1 // the header line
  while (start > 0 && start < text.length) {
    let end = text.indexOf('\n', start)
    if (end === -1) end = text.length
    const line = text.slice(start, end)
    start = end + 1
    if (line.trim() === '') continue
    const row = parseRow(line)
    if (row === undefined) malformed++
    else rows.push(row)
  }
  return { rows, malformed }
}

/** `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`: fields split by runs of spaces. */
function parseRow(line: string): TcpRow | undefined {
  const fields: string[] = []
  let i = 0
  while (fields.length < 10 && i < line.length) {
    while (line.charCodeAt(i) === 32) i++
    const from = i
    while (i < line.length && line.charCodeAt(i) !== 32) i++
    if (i > from) fields.push(line.slice(from, i))
  }
  const [, local, remote, st, , , , , , inode] = fields
  if (local === undefined || remote === undefined || st === undefined || inode === undefined || !/^\d+$/.test(inode)) return undefined
  const [localHex, localPortHex] = local.split(':')
  const [remoteHex, remotePortHex] = remote.split(':')
  const state = /^[0-9A-Fa-f]{2}$/.test(st) ? TCP_STATES[Number.parseInt(st, 16) as keyof typeof TCP_STATES] : undefined
  const localPort = parsePort(localPortHex)
  const remotePort = parsePort(remotePortHex)
  if (!isAddressHex(localHex) || !isAddressHex(remoteHex) || state === undefined || localPort === undefined || remotePort === undefined)
    return undefined
  return { localHex, localPort, remoteHex, remotePort, state, inode }
}

const isAddressHex = (hex: string | undefined): hex is string => hex !== undefined && /^(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{32})$/.test(hex)

export function decodeRow(row: TcpRow, littleEndian = LITTLE_ENDIAN): TcpSocket {
  return {
    localAddress: decodeAddress(row.localHex, littleEndian)!,
    localPort: row.localPort,
    remoteAddress: decodeAddress(row.remoteHex, littleEndian)!,
    remotePort: row.remotePort,
    state: row.state,
    inode: row.inode,
  }
}

/** Every socket line of /proc/net/tcp or tcp6, decoded. */
export function parseTcpTable(text: string, littleEndian = LITTLE_ENDIAN): { sockets: TcpSocket[]; malformed: number } {
  const { rows, malformed } = parseTcpRows(text)
  return { sockets: rows.map((row) => decodeRow(row, littleEndian)), malformed }
}

function parsePort(hex: string | undefined): number | undefined {
  return hex !== undefined && /^[0-9A-Fa-f]{4}$/.test(hex) ? Number.parseInt(hex, 16) : undefined
}

/** The `Tcp:` counters of /proc/net/snmp by name (PassiveOpens, ActiveOpens, CurrEstab, ...); undefined if absent. */
export function parseSnmpTcp(text: string): Record<string, number> | undefined {
  const lines = text.split('\n').filter((line) => line.startsWith('Tcp:'))
  if (lines.length < 2) return undefined
  const names = lines[0]!.split(/\s+/).slice(1)
  const values = lines[1]!.split(/\s+/).slice(1)
  if (names.length !== values.length) return undefined
  const counters: Record<string, number> = {}
  names.forEach((name, i) => {
    const value = Number(values[i])
    if (Number.isFinite(value)) counters[name] = value
  })
  return counters
}
