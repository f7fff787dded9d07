/**
 * The local ends of the connections the sidecar's side-call client opened (transport.ts reports each one), so the
 * traffic observer can tell the app's end of a sidecar call from a client's even after the sidecar's socket is
 * gone. An entry is kept for two minutes after its connection opened: long enough for the app's end to linger
 * in TIME_WAIT (60 s on Linux) after a short call; a connection that lives longer was seen while the sidecar
 * still held its socket. The bound keeps an endless stream of calls from growing the set.
 */
import type { Clock } from '../clock.ts'
import { canonicalIp } from '../ip.ts'

export const OWN_END_TTL_MS = 120_000
const MAX_ENDS = 4_096

export function createOwnConnections(clock: Clock) {
  /** `address|port` → when it was opened; insertion order is age order. */
  const ends = new Map<string, number>()
  const forget = () => {
    const oldest = clock.now() - OWN_END_TTL_MS
    for (const [end, at] of ends) {
      if (at > oldest && ends.size <= MAX_ENDS) break
      ends.delete(end)
    }
  }
  return {
    record(address: string | undefined, port: number | undefined) {
      if (address === undefined || port === undefined) return
      const end = `${canonicalIp(address) ?? address}|${port}`
      ends.delete(end)
      ends.set(end, clock.now())
      forget()
    },
    ends(): Iterable<string> {
      forget()
      return ends.keys()
    },
  }
}
