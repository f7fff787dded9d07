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
import { type TcpRow, type TcpSocket, decodeRow, parseSnmpTcp, parseTcpRows } from './proc-net.ts'

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
  /**
   * DRAIN_TRAFFIC_COUNTER: read Tcp PassiveOpens (default). Off only where the network namespace is shared with
   * other workloads (hostNetwork pods, the simulator), whose connections the counter cannot tell apart.
   */
  useCounter?: boolean
  /**
   * Local ends (`address|port`) of connections this process opened recently, as its HTTP client recorded them:
   * the app's end of a sidecar call whose client socket was already closed when /proc was read (an app that
   * closes after each answer) is still known as the sidecar's own.
   */
  ownLocalEnds?: () => Iterable<string>
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
  /** The HTTP counter sources (sources.ts) whose counter rose since the previous sample. */
  countersRose?: string[]
}

const OPEN_STATES = new Set<TcpSocket['state']>(['ESTABLISHED', 'SYN_RECV', 'NEW_SYN_RECV', 'CLOSE_WAIT'])

/** A connection's identity within its table, from the undecoded row (decoding every row costs too much). */
const key = (r: TcpRow) => `${r.localHex}:${r.localPort}|${r.remoteHex}:${r.remotePort}`
const isLoopback = (ip: string) => ip === '::1' || ip.startsWith('127.')

export function createTrafficObserver(options: TrafficObserverOptions): () => Promise<Observation> {
  const { read, hostIps, sidecarPort } = options
  const useCounter = options.useCounter !== false
  let seen: Set<string> | undefined
  /** App-side ends of the sidecar's own calls, remembered after their client socket is gone. */
  const ownCalls = new Set<string>()
  let baseline: number | undefined
  /** Every app port seen listening in this drain: an app that stops listening keeps its open connections. */
  const appPortsSeen = new Set<number>(options.appPorts ?? [])
  let newPassiveSockets = 0
  let highestUnexplained = 0

  return async function observe(): Promise<Observation> {
    const problems: string[] = []
    const sources: string[] = []
    // The counter first, the tables after: a socket can then only be ahead of the counter, never behind it, and
    // the high-water mark below absorbs that.
    const passiveOpens = !useCounter
      ? undefined
      : await read.readFile(PROC_SNMP).then(
          (text) => {
            const value = parseSnmpTcp(text)?.PassiveOpens
            if (value === undefined) problems.push(`${PROC_SNMP}: no Tcp PassiveOpens counter`)
            else sources.push(PROC_SNMP)
            return value
          },
          (error: unknown) => void problems.push(`${PROC_SNMP}: ${errorText(error)}`),
        )
    const rows: TcpRow[] = []
    for (const path of [PROC_TCP, PROC_TCP6]) {
      const text = await read.readFile(path).catch((error: unknown) => {
        // A kernel without IPv6 has no tcp6 file, and no IPv6 connections either.
        if (!(path === PROC_TCP6 && (error as { code?: unknown }).code === 'ENOENT')) problems.push(`${path}: ${errorText(error)}`)
        return undefined
      })
      if (text === undefined) continue
      const table = parseTcpRows(text)
      if (table.malformed > 0) problems.push(`${path}: ${table.malformed} line(s) not in the documented format`)
      for (const row of table.rows) rows.push(row)
      sources.push(path)
    }
    const own = await read.ownSocketInodes().catch(() => new Set<string>())

    const listeners = rows.filter((r) => r.state === 'LISTEN').map((r) => decodeRow(r))
    if (options.appPorts === undefined)
      for (const s of listeners)
        if (!own.has(s.inode) && s.localPort !== sidecarPort && !isLoopback(s.localAddress)) appPortsSeen.add(s.localPort)
    const appPorts = appPortsSeen
    // The server side of every connection: its local port is one somebody listens on, or an app port (configured,
    // or seen listening earlier in this drain): an app told to shut down often closes its listener at once and
    // goes on serving its keep-alive connections, which are still traffic.
    const serverPorts = new Set([...listeners.map((s) => s.localPort), ...appPorts])
    const passive = rows.filter((r) => r.state !== 'LISTEN' && serverPorts.has(r.localPort) && !own.has(r.inode))
    // Only the app's connections and the sidecar's own sockets are decoded: a busy table has thousands of others.
    const ownEnds = new Set(
      rows
        .filter((r) => own.has(r.inode))
        .map((r) => decodeRow(r))
        .map((s) => `${s.localAddress}|${s.localPort}`),
    )
    for (const end of options.ownLocalEnds?.() ?? []) ownEnds.add(end)
    const app = passive.filter((r) => appPorts.has(r.localPort)).map((r) => ({ row: r, socket: decodeRow(r) }))
    for (const { row, socket } of app) if (ownEnds.has(`${socket.remoteAddress}|${socket.remotePort}`)) ownCalls.add(key(row))
    const isAppTraffic = ({ row, socket }: { row: TcpRow; socket: TcpSocket }) =>
      !hostIps.includes(socket.remoteAddress) && !ownCalls.has(key(row))

    const first = seen === undefined
    const before = seen ?? new Set<string>()
    const isFresh = (r: TcpRow) => !first && !before.has(key(r))
    // Without the counter only the app's connections need remembering (a shared namespace has thousands more).
    seen = new Set((useCounter ? passive : app.map((a) => a.row)).map(key))
    const open = app.filter((a) => OPEN_STATES.has(a.socket.state) && isAppTraffic(a)).length
    const opened = app.filter((a) => isFresh(a.row) && isAppTraffic(a)).length
    const fresh = useCounter ? passive.filter(isFresh).length : 0

    let unexplainedOpens = 0
    if (passiveOpens !== undefined) {
      if (baseline === undefined || first) baseline = passiveOpens
      newPassiveSockets += fresh
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
