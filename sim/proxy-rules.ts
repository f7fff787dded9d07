/**
 * kube-proxy's rules in the node namespace of the data plane (sim/data-plane.ts), read per proxy mode: whether new
 * connections to the Service are sent to a pod address, and the ruleset as text for error messages.
 *
 * iptables mode runs on iptables-nft, chosen here rather than left to whatever `iptables` the host's alternatives
 * name: it is what current distributions (Debian, Ubuntu, RHEL) install as `iptables` and what this machine's
 * alternatives point at, and in a fresh node namespace, with no legacy rules a kubelet made, the kube-proxy image's
 * iptables-wrapper would pick it too. kube-proxy itself runs plain `iptables`, `iptables-save`, `iptables-restore`
 * (and the ip6tables ones) from PATH, so a directory of links to the -nft binaries goes first on its PATH, and these
 * helpers read the rules back with the same binaries. Legacy iptables would be the same proxier on the kernel's
 * older x_tables; kube-proxy's sync logic, which is what the drain depends on, does not differ.
 */
import { spawnSync } from 'node:child_process'
import { mkdir, symlink } from 'node:fs/promises'
import { join } from 'node:path'

export const PROXY_MODES = ['nftables', 'iptables'] as const
export type ProxyMode = (typeof PROXY_MODES)[number]

/**
 * The system's directories only: under npm, node_modules/.bin comes first on PATH, and @vercel/nft's `nft` there
 * would shadow nftables' `nft` that kube-proxy and these helpers run.
 */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
const IPTABLES_BACKEND = 'nft'
const IPTABLES_TOOLS = ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore']

/**
 * kube-proxy's PATH for a mode: in iptables mode a directory (made under `dir`) of `iptables`... links to the
 * iptables-nft binaries, then the system's; they dispatch on the name they are called by, as through alternatives.
 */
export async function proxyPath(mode: ProxyMode, dir: string): Promise<string> {
  if (mode === 'nftables') return SYSTEM_PATH
  const bin = join(dir, `iptables-${IPTABLES_BACKEND}-bin`)
  await mkdir(bin, { recursive: true })
  for (const tool of IPTABLES_TOOLS) {
    const [family, ...rest] = tool.split('-')
    await symlink(`/usr/sbin/${[family, IPTABLES_BACKEND, ...rest].join('-')}`, join(bin, tool))
  }
  return `${bin}:${SYSTEM_PATH}`
}

/** A command in the network namespace `ns`, with the system's PATH; its output, or why it had none. */
function inNamespace(ns: string, command: string[]): { ok: boolean; text: string } {
  const run = spawnSync('ip', ['netns', 'exec', ns, ...command], { encoding: 'utf8', env: { ...process.env, PATH: SYSTEM_PATH } })
  return { ok: run.status === 0, text: run.stdout || run.stderr || String(run.error ?? '') }
}

/**
 * The ruleset a mode of kube-proxy writes in `ns`, as text: nftables mode's table `ip kube-proxy`, or the nat table
 * as iptables-nft-save lists it. `ok` is false when the tool found nothing (no such table) or failed.
 */
export function listRules(ns: string, kind: ProxyMode): { ok: boolean; text: string } {
  return kind === 'nftables'
    ? inNamespace(ns, ['nft', 'list', 'table', 'ip', 'kube-proxy'])
    : inNamespace(ns, [`iptables-${IPTABLES_BACKEND}-save`, '-t', 'nat'])
}

/**
 * Whether these rules send new connections to `ip`. nftables: a service chain's load-balancing map (`numgen random
 * ... vmap`) names the endpoint chain (`...__<ip>/<port>`); stale endpoint chains linger a while after they are
 * unlinked, so the table's text alone would say yes too long. iptables: a service chain (KUBE-SVC-..., or KUBE-SVL-...
 * for local traffic) jumps to an endpoint chain (KUBE-SEP-...) whose DNAT goes to `<ip>:<port>`; an endpoint chain
 * no service chain jumps to routes nothing.
 */
export function rulesRouteTo(kind: ProxyMode, rules: string, ip: string): boolean {
  const lines = rules.split('\n')
  if (kind === 'nftables') return lines.some((line) => line.includes('numgen') && line.includes(`__${ip}/`))
  const toIp = new Set<string>()
  for (const line of lines) {
    const sep = /^-A (KUBE-SEP-\S+) .*-j DNAT .*--to-destination (\S+)/.exec(line)
    if (sep && sep[2]!.startsWith(`${ip}:`)) toIp.add(sep[1]!)
  }
  return lines.some((line) => {
    const jump = /^-A KUBE-SV[CL]-\S+ .*-j (KUBE-SEP-\S+)/.exec(line)
    return jump !== null && toIp.has(jump[1]!)
  })
}
