/**
 * Turns the kernel's TCP views into one answer per sample: has traffic reached the app since the last sample?
 * Stateful across the samples of one drain (the counter's baseline, the sockets seen before); reads only through
 * the injected reader. Safe before tight: whatever it cannot read or attribute counts as traffic.
 *
 * What counts as traffic, at one sample:
 *   - an inbound connection to an app port that is open (ESTABLISHED, SYN_RECV, CLOSE_WAIT): a pooled keep-alive
 *     connection can carry a request at any moment without opening anything new;
 *   - an inbound connection to an app port seen for the first time, in any state (a short one the app closed
 *     first shows up as TIME_WAIT);
 *   - an increase of Tcp PassiveOpens that no newly seen socket accounts for: a connection opened and closed
 *     between two samples whose pod-side socket is already gone. A kubelet tcpSocket probe leaves exactly that, and
 *     so does a request-per-connection client that closed first: they cannot be told apart, so it counts.
 * Not traffic: connections from the node's addresses (HOST_IP: kubelet probes and hook calls), to the sidecar's
 * own port or to ports that are not the app's, and the app's end of the sidecar's own calls (their other end is a
 * socket this process holds).
 */
import { type TcpSocket, parseSnmpTcp, parseTcpTable } from './proc-net.ts'

export type ProcReader = {
  /** The text of a /proc file; rejects when it cannot be read (with code ENOENT when it does not exist). */
  readFile(path: string): Promise<string>
  /** Inodes of the sockets this process holds (the `socket:[inode]` links in /proc/self/fd). */
  ownSocketInodes(): Promise<ReadonlySet<string>>
}

export const PROC_TCP = '/proc/net/tcp'
export const PROC_TCP6 = '/proc/net/tcp6'
export const PROC_SNMP = '/proc/net/snmp'

export type TrafficObserverOptions = Readonly<{
  read: ProcReader
  /** DRAIN_APP_PORTS; undefined: every port listened on by someone else, on an address that is not loopback. */
  appPorts: readonly number[] | undefined
  /** HOST_IP: the node's addresses, where the kubelet's probes and hook calls come from. */
  hostIps: readonly string[]
  /** DRAIN_PORT. */
  sidecarPort: number
}>

export type Observation = {
  /** Traffic reached the app since the previous sample, or the sample could not tell. */
  traffic: boolean
  /** Inbound connections to the app's ports open now. */
  open: number
  /** Inbound connections to the app's ports first seen in this sample. */
  opened: number
  /** PassiveOpens increase no newly seen socket accounts for. */
  unexplainedOpens: number
  /** The files read in this sample. */
  sources: string[]
  /** What could not be read or parsed (the sample then counted as traffic). */
  problems: string[]
  /** The app's ports this sample looked at. */
  appPorts: number[]
}

const OPEN_STATES = new Set<TcpSocket['state']>(['ESTABLISHED', 'SYN_RECV', 'NEW_SYN_RECV', 'CLOSE_WAIT'])

const key = (s: TcpSocket) => `${s.localAddress}|${s.localPort}|${s.remoteAddress}|${s.remotePort}`
const isLoopback = (ip: string) => ip === '::1' || ip.startsWith('127.')

export function createTrafficObserver(options: TrafficObserverOptions): () => Promise<Observation> {
  const { read, hostIps, sidecarPort } = options
  let seen: Set<string> | undefined
  /** App-side ends of the sidecar's own calls, remembered after their client socket is gone. */
  const ownCalls = new Set<string>()
  let baseline: number | undefined
  let newPassiveSockets = 0
  let highestUnexplained = 0

  return async function observe(): Promise<Observation> {
    const problems: string[] = []
    const sources: string[] = []
    // The counter first, the tables after: a socket can then only be ahead of the counter, never behind it, and
    // the high-water mark below absorbs that.
    const passiveOpens = await read.readFile(PROC_SNMP).then(
      (text) => {
        const value = parseSnmpTcp(text)?.PassiveOpens
        if (value === undefined) problems.push(`${PROC_SNMP}: no Tcp PassiveOpens counter`)
        else sources.push(PROC_SNMP)
        return value
      },
      (error: unknown) => void problems.push(`${PROC_SNMP}: ${errorText(error)}`),
    )
    const sockets: TcpSocket[] = []
    for (const path of [PROC_TCP, PROC_TCP6]) {
      const text = await read.readFile(path).catch((error: unknown) => {
        // A kernel without IPv6 has no tcp6 file, and no IPv6 connections either.
        if (!(path === PROC_TCP6 && (error as { code?: unknown }).code === 'ENOENT')) problems.push(`${path}: ${errorText(error)}`)
        return undefined
      })
      if (text === undefined) continue
      const table = parseTcpTable(text)
      if (table.malformed > 0) problems.push(`${path}: ${table.malformed} line(s) not in the documented format`)
      sockets.push(...table.sockets)
      sources.push(path)
    }
    const own = await read.ownSocketInodes().catch(() => new Set<string>())

    const listeners = sockets.filter((s) => s.state === 'LISTEN')
    const listeningPorts = new Set(listeners.map((s) => s.localPort))
    const appPorts = new Set(
      options.appPorts ?? listeners.filter((s) => !own.has(s.inode) && s.localPort !== sidecarPort && !isLoopback(s.localAddress)).map((s) => s.localPort),
    )
    const ownEnds = new Set(sockets.filter((s) => own.has(s.inode)).map((s) => `${s.localAddress}|${s.localPort}`))
    // The server side of every connection: its local port is one somebody listens on.
    const passive = sockets.filter((s) => s.state !== 'LISTEN' && listeningPorts.has(s.localPort) && !own.has(s.inode))
    for (const s of passive) if (ownEnds.has(`${s.remoteAddress}|${s.remotePort}`)) ownCalls.add(key(s))
    const isAppTraffic = (s: TcpSocket) => appPorts.has(s.localPort) && !hostIps.includes(s.remoteAddress) && !ownCalls.has(key(s))

    const keys = new Set(passive.map(key))
    const first = seen === undefined
    const fresh = first ? [] : passive.filter((s) => !seen!.has(key(s)))
    seen = keys
    const open = passive.filter((s) => OPEN_STATES.has(s.state) && isAppTraffic(s)).length
    const opened = fresh.filter(isAppTraffic).length

    let unexplainedOpens = 0
    if (passiveOpens !== undefined) {
      if (baseline === undefined || first) baseline = passiveOpens
      newPassiveSockets += fresh.length
      const unexplained = passiveOpens - baseline - newPassiveSockets
      if (unexplained > highestUnexplained) {
        unexplainedOpens = unexplained - highestUnexplained
        highestUnexplained = unexplained
      }
    }
    return {
      traffic: problems.length > 0 || open > 0 || opened > 0 || unexplainedOpens > 0,
      open,
      opened,
      unexplainedOpens,
      sources,
      problems,
      appPorts: [...appPorts].sort((a, b) => a - b),
    }
  }
}

function errorText(error: unknown): string {
  const code = (error as { code?: unknown }).code
  return typeof code === 'string' ? code : error instanceof Error ? error.message : String(error)
}
