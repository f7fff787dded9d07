/**
 * IP address parsing and canonical form. EndpointSlice addresses are canonical (Go's net.IP.String()), while
 * POD_IP may spell an IPv6 address differently (`fd00:0:0::1` vs `fd00::1`), so both sides are compared only
 * after canonicalizing. Pure.
 */
import { isIPv4, isIPv6 } from 'node:net'

const MAPPED_V4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i

/** The canonical spelling of an IP address, or undefined if `text` is not one. */
export function canonicalIp(text: string): string | undefined {
  const raw = text.trim()
  if (isIPv4(raw)) return raw
  // A zone (fe80::1%eth0) is link-local and never in an EndpointSlice; the URL parser would throw on it.
  if (!isIPv6(raw) || raw.includes('%')) return undefined
  // The WHATWG URL parser compresses and lower-cases IPv6 exactly as RFC 5952 (and Go) does.
  const host = new URL(`http://[${raw}]/`).hostname.slice(1, -1)
  // Go prints IPv4-mapped IPv6 addresses in dotted form; so must we, or they would never match.
  const mapped = MAPPED_V4.exec(raw) ?? MAPPED_V4.exec(host)
  if (mapped?.[1] && isIPv4(mapped[1])) return mapped[1]
  if (/^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(host)) {
    const [hi, lo] = host
      .slice(7)
      .split(':')
      .map((part) => Number.parseInt(part, 16)) as [number, number]
    return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.')
  }
  return host
}

/** Parses a comma-separated list such as POD_IP on a dual-stack pod; undefined if any entry is not an IP. */
export function parseIpList(text: string): string[] | undefined {
  const parts = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
  const ips: string[] = []
  for (const part of parts) {
    const ip = canonicalIp(part)
    if (ip === undefined) return undefined
    if (!ips.includes(ip)) ips.push(ip)
  }
  return ips
}
