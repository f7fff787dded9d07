/**
 * npm run bench:footprint: the sidecar's footprint beside a bare Node `http` server measured in the same run.
 *
 * Each run starts both processes (in alternating order) with the same Node binary and measures:
 *   - start-up: from spawn to the process saying it listens (the sidecar's `started` log line, written right after
 *     listen; the bare server's own line from its listen callback), and the CPU time the process had used by then
 *     (from /proc, 10 ms resolution), which other load on the machine disturbs less than the wall-clock time;
 *   - idle RSS: VmRSS from /proc a fixed time after listening (for the sidecar: after its start-up access check
 *     against the fake Kubernetes API has answered, as in a cluster), with no traffic yet;
 *   - after scrapes: VmHWM (the peak RSS of the process's whole life) after N sequential GET /metrics on one
 *     keep-alive connection (the bare server answers the same requests with a short body).
 * The sidecar is measured twice: alone (no API server configured) and in-cluster (against the fake API, after its
 * start-up access check). The figures are medians over the runs; the ratios are sidecar / bare. The sidecar runs the
 * way the image runs it:
 * the bundle with the image's Node flags (IMAGE_NODE_FLAGS below, kept equal to the Dockerfile's CMD by
 * test/image.test.ts) and, with --compile-cache (the default, as the image ships one), NODE_COMPILE_CACHE pointing
 * at a directory that image/warm-compile-cache.mjs filled, as the Dockerfile's compile-cache stage does.
 *
 * Options: --runs=7 --scrapes=1000 --idle-ms=1000 --flags="..." (override the sidecar's Node flags)
 *          --compile-cache=true|false --out=bench-results
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request, Agent } from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { median, sleep } from '../sim/common.ts'
import { startFakeKube } from '../sim/fakes/fake-kube.ts'
import { processMemory } from '../sim/fakes/held-hooks.ts'
import { endpointSlice, READY } from '../sim/fakes/fixtures.ts'
import { BUNDLE, freePort } from '../sim/fakes/sidecar-process.ts'
import { IMAGE_NODE_FLAGS } from './node-flags.mjs'

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    scrapes: { type: 'string', default: '1000' },
    'idle-ms': { type: 'string', default: '1000' },
    flags: { type: 'string' },
    'compile-cache': { type: 'string', default: 'true' },
    bundle: { type: 'string', default: BUNDLE },
    out: { type: 'string', default: 'bench-results' },
  },
})

function count(name: string, value: string | undefined, min: number): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name}=${value}: expected a whole number from ${min}`)
    process.exit(2)
  }
  return n
}
const RUNS = count('runs', args.runs, 1)
const SCRAPES = count('scrapes', args.scrapes, 0)
const IDLE_MS = count('idle-ms', args['idle-ms'], 0)
const FLAGS = args.flags === undefined ? IMAGE_NODE_FLAGS : args.flags.split(/\s+/).filter(Boolean)
if (args['compile-cache'] !== 'true' && args['compile-cache'] !== 'false') {
  console.error(`--compile-cache=${args['compile-cache']}: expected true or false`)
  process.exit(2)
}
const COMPILE_CACHE = args['compile-cache'] === 'true'
const SIDECAR = args.bundle!
if (!existsSync(SIDECAR)) {
  console.error(`no bundle at ${SIDECAR}: run npm run build first`)
  process.exit(2)
}

/** The baseline: Node's own http server, nothing loaded, answering every request with a short body. */
const BARE_SERVER = `import { createServer } from 'node:http'
const server = createServer((req, res) => res.end('ok\\n'))
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.stdout.write('listening\\n'))
process.on('SIGTERM', () => process.exit(0))
`
/**
 * The same server as CommonJS. An ES module's `import ... from 'node:http'` reads every export of node:http, and
 * its WebSocket, CloseEvent and MessageEvent getters load Node's internal undici (about 20 ms here); require() does
 * not. The sidecar loads that undici anyway (@hono/node-server reads the global Request and Response when it
 * loads), so the ES module server is the baseline of the goal, and this one is shown beside it.
 */
const BARE_SERVER_CJS = `const { createServer } = require('node:http')
const server = createServer((req, res) => res.end('ok\\n'))
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.stdout.write('listening\\n'))
process.on('SIGTERM', () => process.exit(0))
`

type Sample = { startupMs: number; startupCpuMs: number; idleRssMb: number; peakAfterScrapesMb: number; scrapesMs: number }
type Name = 'bare' | 'bareCjs' | 'alone' | 'inCluster'
type Subject = {
  name: Name
  args: string[]
  env: Record<string, string>
  /** The line that says it listens. */
  ready: (line: string) => boolean
  /** The line after which it is idle (default: the ready line). */
  idle?: (line: string) => boolean
  path: string
}

/** Bytes in MiB (the table's "MB"). */
const mb = (bytes: number) => bytes / 1024 / 1024

/** CPU time (user + system, every thread) the process has used so far, from /proc; 10 ms resolution. */
function cpuMs(pid: number): number {
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are the 12th and 13th.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /s, '')
    .split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1_000) / CLOCK_TICKS
}
/** USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK). */
const CLOCK_TICKS = 100

async function scrape(port: number, path: string, times: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  try {
    for (let i = 0; i < times; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
          res.resume()
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`GET ${path}: ${res.statusCode}`))))
        })
        req.on('error', reject)
        req.end()
      })
    }
  } finally {
    agent.destroy()
  }
}

async function measure(subject: Subject): Promise<Sample> {
  const port = await freePort()
  const began = performance.now()
  const child = spawn(process.execPath, subject.args, {
    env: { PATH: process.env.PATH ?? '', ...subject.env, PORT: String(port), DRAIN_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  try {
    let startupMs: number | undefined
    let startupCpuMs = 0
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${subject.name}: not listening and idle within 30 s; stderr: ${stderr}`)), 30_000)
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (startupMs === undefined && subject.ready(line)) {
          startupMs = performance.now() - began
          startupCpuMs = cpuMs(child.pid!)
        }
        if (startupMs !== undefined && (subject.idle ?? subject.ready)(line)) {
          clearTimeout(timer)
          resolve()
        }
      })
      child.once('exit', (code) => reject(new Error(`${subject.name} exited with ${code}; stderr: ${stderr}`)))
    })
    await sleep(IDLE_MS)
    const idle = await processMemory(child.pid!)
    const scrapesBegan = performance.now()
    await scrape(port, subject.path, SCRAPES)
    const scrapesMs = performance.now() - scrapesBegan
    const after = await processMemory(child.pid!)
    return { startupMs: startupMs!, startupCpuMs, idleRssMb: mb(idle.rss), peakAfterScrapesMb: mb(after.peak), scrapesMs }
  } finally {
    child.kill('SIGKILL')
    await new Promise((resolve) =>
      child.exitCode === null && child.signalCode === null ? child.once('exit', resolve) : resolve(undefined),
    )
  }
}

/** image/warm-compile-cache.mjs, run as the Dockerfile's compile-cache stage runs it (with the sidecar's flags). */
async function warmCompileCache(env: Record<string, string>): Promise<void> {
  const warm = spawn(process.execPath, [...FLAGS, WARM_SCRIPT, resolve(SIDECAR)], {
    env: { PATH: process.env.PATH ?? '', ...env, DRAIN_PORT: String(await freePort()) },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const code = await new Promise((done) => warm.once('exit', done))
  if (code !== 0) throw new Error(`${WARM_SCRIPT} exited with ${code}`)
}
const WARM_SCRIPT = fileURLToPath(new URL('../image/warm-compile-cache.mjs', import.meta.url))

// The sidecar as in a cluster: an API server (the tests' fake, over HTTPS) holding the pod's EndpointSlice.
const NS = 'bench'
const kube = await startFakeKube({ namespace: NS })
let tmp: string | undefined
try {
  tmp = await mkdtemp(join(tmpdir(), 'bench-footprint-'))
  kube.upsert(
    endpointSlice({
      name: 'web-abcde',
      service: 'web',
      namespace: NS,
      endpoints: [{ ip: '10.0.0.7', podName: 'web-1', uid: 'uid-web-1', ...READY }],
    }),
  )
  const tokenFile = join(tmp, 'token')
  await writeFile(tokenFile, 'test-token')
  const bareFile = join(tmp, 'bare-server.mjs')
  await writeFile(bareFile, BARE_SERVER)
  const bareCjsFile = join(tmp, 'bare-server.cjs')
  await writeFile(bareCjsFile, BARE_SERVER_CJS)
  const cacheEnv: Record<string, string> = COMPILE_CACHE ? { NODE_COMPILE_CACHE: join(tmp, 'compile-cache') } : {}
  const sidecarEnv: Record<string, string> = {
    DRAIN_HOST: '127.0.0.1',
    DRAIN_KUBE_API_URL: kube.url,
    DRAIN_KUBE_CA_FILE: kube.caFile,
    DRAIN_KUBE_TOKEN_FILE: tokenFile,
    POD_NAMESPACE: NS,
    POD_NAME: 'web-1',
    POD_UID: 'uid-web-1',
    POD_IP: '10.0.0.7',
    ...cacheEnv,
  }
  const subjects: Subject[] = [
    { name: 'bare', args: [bareFile], env: {}, ready: (line) => line === 'listening', path: '/metrics' },
    { name: 'bareCjs', args: [bareCjsFile], env: {}, ready: (line) => line === 'listening', path: '/metrics' },
    {
      name: 'alone',
      args: [...FLAGS, SIDECAR],
      env: { DRAIN_HOST: '127.0.0.1', ...cacheEnv },
      ready: (line) => line.includes('"event":"started"'),
      path: '/metrics',
    },
    {
      name: 'inCluster',
      args: [...FLAGS, SIDECAR],
      env: sidecarEnv,
      ready: (line) => line.includes('"event":"started"'),
      idle: (line) => line.includes('"event":"kube_access_ok"'),
      path: '/metrics',
    },
  ]
  // With --compile-cache, the cache is made as the image's compile-cache stage makes it: the warm script, once.
  if (COMPILE_CACHE) await warmCompileCache(cacheEnv)
  // Warm-up, not counted: fills the OS page cache for all.
  for (const subject of subjects) await measure(subject)
  const samples: Record<Name, Sample[]> = { bare: [], bareCjs: [], alone: [], inCluster: [] }
  for (let run = 0; run < RUNS; run++) {
    // Rotate who goes first, so that none always starts on a machine another has just warmed or loaded.
    for (let i = 0; i < subjects.length; i++) {
      const subject = subjects[(run + i) % subjects.length]!
      samples[subject.name].push(await measure(subject))
    }
    process.stderr.write(`  footprint run ${run + 1}/${RUNS}\n`)
  }
  const med = (name: Name, key: keyof Sample) => median(samples[name].map((sample) => sample[key]))!
  const summary = (name: Name) => ({
    startupMs: med(name, 'startupMs'),
    startupCpuMs: med(name, 'startupCpuMs'),
    idleRssMb: med(name, 'idleRssMb'),
    peakAfterScrapesMb: med(name, 'peakAfterScrapesMb'),
    peakAboveIdleMb: median(samples[name].map((sample) => sample.peakAfterScrapesMb - sample.idleRssMb))!,
    scrapesMs: med(name, 'scrapesMs'),
  })
  const figures = { bare: summary('bare'), bareCjs: summary('bareCjs'), alone: summary('alone'), inCluster: summary('inCluster') }
  const ratios = (name: 'alone' | 'inCluster', base: 'bare' | 'bareCjs' = 'bare') => ({
    startup: figures[name].startupMs / figures[base].startupMs,
    startupCpu: figures[name].startupCpuMs / figures[base].startupCpuMs,
    idleRss: figures[name].idleRssMb / figures[base].idleRssMb,
  })
  const result = {
    node: process.version,
    flags: FLAGS,
    compileCache: COMPILE_CACHE,
    bundle: SIDECAR,
    runs: RUNS,
    scrapes: SCRAPES,
    idleMs: IDLE_MS,
    figures,
    ratios: { alone: ratios('alone'), inCluster: ratios('inCluster') },
    ratiosToCommonJsBare: { alone: ratios('alone', 'bareCjs'), inCluster: ratios('inCluster', 'bareCjs') },
    samples,
  }
  const f1 = (n: number) => n.toFixed(1)
  const x = (n: number) => `${n.toFixed(2)}x`
  const row = (label: string, name: Name) => {
    const f = figures[name]
    const r = name === 'bare' || name === 'bareCjs' ? undefined : ratios(name)
    return `| ${label} | ${f1(f.startupMs)} ms | ${r ? x(r.startup) : ''} | ${f1(f.startupCpuMs)} ms | ${r ? x(r.startupCpu) : ''} | ${f1(f.idleRssMb)} MB | ${r ? x(r.idleRss) : ''} | ${f1(f.peakAfterScrapesMb)} MB | ${f1(f.peakAboveIdleMb)} MB | ${f1(f.scrapesMs)} ms |`
  }
  console.log(
    [
      `Footprint, ${RUNS} runs, medians. Node ${process.version}; sidecar flags: ${FLAGS.join(' ') || 'none'}; compile cache: ${COMPILE_CACHE ? 'on' : 'off'}.`,
      `Goals: start-up ≤ 1.30x and idle RSS ≤ 1.10x the bare server's; peak after ${SCRAPES} scrapes of /metrics ≤ 10 MB above idle.`,
      '',
      `| process | start-up to listening | ratio | CPU used by then | ratio | idle RSS | ratio | peak RSS after ${SCRAPES} scrapes | peak − idle | ${SCRAPES} scrapes took |`,
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      row('bare Node `http` server (the baseline)', 'bare'),
      row('drain-coordinator, no API server', 'alone'),
      row('drain-coordinator, in-cluster (access check done)', 'inCluster'),
      row('bare server as CommonJS (no internal undici; not the baseline)', 'bareCjs'),
      '',
      `Against the CommonJS bare server: start-up ${x(ratios('alone', 'bareCjs').startup)} (no API server), ${x(ratios('inCluster', 'bareCjs').startup)} (in-cluster); idle RSS ${x(ratios('alone', 'bareCjs').idleRss)}.`,
    ].join('\n'),
  )
  await mkdir(args.out!, { recursive: true })
  await writeFile(join(args.out!, 'footprint.json'), JSON.stringify(result, null, 2) + '\n')
  console.log(`\nJSON: ${join(args.out!, 'footprint.json')}`)
} finally {
  await kube.close()
  if (tmp) await rm(tmp, { recursive: true, force: true })
}
