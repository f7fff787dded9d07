/**
 * Pods as network namespaces. Run as root, the simulator gives every pod what it has in a cluster: its own network
 * namespace with its own address, holding the app and the sidecar, so each sidecar's /proc/net is its pod's alone.
 * The namespaces hang off a bridge on the host side that plays the node: it carries the node's address (the
 * kubelet's hook calls and probes come from it, the sidecars get it as HOST_IP, the fake API server listens on it)
 * and a second address the load balancer connects from, so its traffic is not taken for the kubelet's.
 *
 * Addresses: one /24 of 198.18.0.0/15 (reserved for benchmarks, RFC 2544) per run, 198.18.<k>.0/24 with k from 1 to
 * 254; 198.19.0.0/16 is left to Service ClusterIPs. Each run takes its k with an exclusive lock file, so runs in
 * parallel (two test files) never share a subnet. Names: the bridge dc-br<k>, the host ends of the veth pairs
 * dc<k>v<i>, the namespaces dc-<pid>-<k>-<i>. A crashed run's leftovers are swept by the next run: a lock whose
 * process is gone frees its k, its bridge and its namespaces.
 *
 * Not root (a laptop): every pod on a loopback address in this machine's namespace, as before; `mode` says which.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { isMainThread, threadId } from 'node:worker_threads'
import { CLUSTER_CA_FILE } from './fakes/fake-kube.ts'

const run = promisify(execFile)
const LOCK_DIR = '/run/drain-coordinator-sim'
const NETNS_DIR = '/run/netns'

export type NetworkMode = 'netns' | 'loopback'

export type SimNetwork = {
  mode: NetworkMode
  /** The first three octets of the pods' addresses: `<prefix>.<host>`. */
  prefix: string
  /** The node's address (HOST_IP); undefined on loopback, where nothing tells the kubelet apart. */
  nodeIp: string | undefined
  /** The load balancer's source address; undefined on loopback. */
  lbIp: string | undefined
  /** Creates the namespace of the pod at `<prefix>.<host>`; returns its name (undefined on loopback). */
  addPod(host: number): Promise<string | undefined>
  /** A server certificate for the fake API server at the node's address, signed by the test cluster CA. */
  apiCertificate(): Promise<{ cert: string; key: string } | undefined>
  /** Removes everything this run created; safe to call twice. */
  close(): Promise<void>
}

export const isRoot = () => process.getuid?.() === 0

/** One line saying where the pods run; the demo and the bench print it first. */
export function networkModeLine(mode: NetworkMode = isRoot() ? 'netns' : 'loopback'): string {
  return mode === 'netns'
    ? 'network: each pod in its own network namespace on 198.18.<k>.0/24 (a bridge this run creates and removes), the kubelet calling from the node address <k>.1'
    : "network: not root, so every pod runs on a loopback address (127.0.x.y) in this machine's network namespace; run as root for pods as network namespaces"
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Kills what still runs in the namespace (a crashed run's orphans; ours once the run is over), then removes it. The
 * host end of its veth pair goes separately: a namespace outlives its name while anything still holds it.
 */
function removeNamespace(ns: string, veth: string | undefined): void {
  const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? ''
  for (const pid of pids
    .split('\n')
    .map(Number)
    .filter((p) => p > 0 && p !== process.pid)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  if (veth) spawnSync('ip', ['link', 'del', veth], { stdio: 'ignore' })
  spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' })
}

/** Removes what crashed runs left: namespaces of dead processes, then their subnet locks, bridges and veths. */
export function sweepLeftovers(): void {
  let names: string[] = []
  try {
    names = readdirSync(NETNS_DIR)
  } catch {
    // no namespace was ever made on this machine
  }
  for (const name of names) {
    const match = /^dc-(\d+)-(\d+)-(\d+)$/.exec(name)
    if (match && !alive(Number(match[1]))) removeNamespace(name, `dc${match[2]}v${match[3]}`)
  }
  mkdirSync(LOCK_DIR, { recursive: true })
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? ''
  for (const file of readdirSync(LOCK_DIR)) {
    const k = /^subnet-(\d+)$/.exec(file)?.[1]
    if (!k) continue
    const pid = Number(readFileSync(join(LOCK_DIR, file), 'utf8').split(' ')[0])
    if (pid && alive(pid)) continue
    for (const veth of links.matchAll(new RegExp(`^\\d+: (dc${k}v\\d+)@`, 'gm')))
      spawnSync('ip', ['link', 'del', veth[1]!], { stdio: 'ignore' })
    spawnSync('ip', ['link', 'del', `dc-br${k}`], { stdio: 'ignore' })
    rmSync(join(LOCK_DIR, file), { force: true })
  }
}

function takeSubnet(): number {
  mkdirSync(LOCK_DIR, { recursive: true })
  for (let k = 1; k <= 254; k++) {
    try {
      writeFileSync(join(LOCK_DIR, `subnet-${k}`), `${process.pid} ${threadId}\n`, { flag: 'wx' })
      return k
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
  }
  throw new Error(`no free /24 in 198.18.0.0/16: 254 locks in ${LOCK_DIR}; remove those of runs that are gone`)
}

async function ip(args: string[]): Promise<void> {
  try {
    await run('ip', args)
  } catch (error) {
    throw new Error(`ip ${args.join(' ')} failed: ${(error as { stderr?: string }).stderr?.trim() ?? String(error)}`, { cause: error })
  }
}

/** Every run cleaned up by the signal and exit handlers below, if its own finally did not get to it. */
const open = new Set<{ removeNow(): void }>()
let handlersInstalled = false
function installHandlers() {
  if (handlersInstalled) return
  handlersInstalled = true
  process.once('exit', () => {
    for (const network of open) network.removeNow()
  })
  // Signals reach only the main thread; a worker's runs are covered by its finally and the exit handler.
  if (!isMainThread) return
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const network of open) network.removeNow()
      process.exit(signal === 'SIGINT' ? 130 : 143)
    })
  }
}

export async function createNetwork(options: { loopbackPrefix: string; forceLoopback?: boolean }): Promise<SimNetwork> {
  if (options.forceLoopback || !isRoot()) {
    return {
      mode: 'loopback',
      prefix: options.loopbackPrefix,
      nodeIp: undefined,
      lbIp: undefined,
      addPod: async () => undefined,
      apiCertificate: async () => undefined,
      close: async () => {},
    }
  }
  installHandlers()
  sweepLeftovers()
  const k = takeSubnet()
  const prefix = `198.18.${k}`
  const bridge = `dc-br${k}`
  const namespaces: Array<{ ns: string; veth: string }> = []
  let closed = false
  const removeNow = () => {
    if (closed) return
    closed = true
    open.delete(handle)
    for (const { ns, veth } of namespaces) removeNamespace(ns, veth)
    spawnSync('ip', ['link', 'del', bridge], { stdio: 'ignore' })
    rmSync(join(LOCK_DIR, `subnet-${k}`), { force: true })
  }
  const handle = { removeNow }
  open.add(handle)
  try {
    spawnSync('ip', ['link', 'del', bridge], { stdio: 'ignore' })
    await ip(['link', 'add', bridge, 'type', 'bridge'])
    await ip(['addr', 'add', `${prefix}.1/24`, 'dev', bridge])
    await ip(['addr', 'add', `${prefix}.2/24`, 'dev', bridge])
    await ip(['link', 'set', bridge, 'up'])
  } catch (error) {
    removeNow()
    throw error
  }
  let certificate: { cert: string; key: string } | undefined
  return {
    mode: 'netns',
    prefix,
    nodeIp: `${prefix}.1`,
    lbIp: `${prefix}.2`,
    async addPod(host) {
      if (host < 3 || host > 254) throw new Error(`pod host part ${host}: expected 3 to 254`)
      const ns = `dc-${process.pid}-${k}-${host}`
      const veth = `dc${k}v${host}`
      namespaces.push({ ns, veth })
      spawnSync('ip', ['link', 'del', veth], { stdio: 'ignore' })
      await ip(['netns', 'add', ns])
      await ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
      await ip(['link', 'set', veth, 'master', bridge, 'up'])
      await ip(['-n', ns, 'addr', 'add', `${prefix}.${host}/24`, 'dev', 'eth0'])
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up'])
      await ip(['-n', ns, 'link', 'set', 'lo', 'up'])
      await ip(['-n', ns, 'route', 'add', 'default', 'via', `${prefix}.1`])
      return ns
    },
    async apiCertificate() {
      certificate ??= await issueServerCertificate(`${prefix}.1`)
      return certificate
    },
    async close() {
      removeNow()
    },
  }
}

/** An EC server certificate for `address`, signed by the test cluster CA (test/fixtures/tls), made with openssl. */
async function issueServerCertificate(address: string): Promise<{ cert: string; key: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'drain-sim-pki-'))
  try {
    const caKey = CLUSTER_CA_FILE.replace(/\.crt$/, '.key')
    await run(
      'openssl',
      [
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-subj',
        '/CN=kubernetes',
        '-keyout',
        'server.key',
        '-out',
        'server.csr',
      ],
      { cwd: dir },
    )
    await writeFile(join(dir, 'ext'), `subjectAltName=IP:${address}\nextendedKeyUsage=serverAuth\n`)
    await run(
      'openssl',
      [
        'x509',
        '-req',
        '-in',
        'server.csr',
        '-CA',
        CLUSTER_CA_FILE,
        '-CAkey',
        caKey,
        '-CAcreateserial',
        '-CAserial',
        join(dir, 'ca.srl'),
        '-days',
        '2',
        '-out',
        'server.crt',
        '-extfile',
        'ext',
      ],
      { cwd: dir },
    )
    return { cert: await readFile(join(dir, 'server.crt'), 'utf8'), key: await readFile(join(dir, 'server.key'), 'utf8') }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** The namespaces of this machine whose names this module makes (for tests: a run leaves none behind). */
export function simNamespaces(): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter((n) => /^dc-\d+-\d+-\d+$/.test(n))
  } catch {
    return []
  }
}
