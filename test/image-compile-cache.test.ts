/**
 * The image's compile cache without Docker: the Dockerfile's compile-cache stage and its CMD must agree on what
 * Node keys the cache by (the Node flags, the user), and the cache that image/warm-compile-cache.mjs leaves, copied
 * read-only as the runtime stage copies it, must be accepted by the sidecar started as the CMD starts it.
 */
import { spawn, spawnSync } from 'node:child_process'
import { chmod, chown, copyFile, cp, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import test from 'ava'
import { IMAGE_NODE_FLAGS } from '../scripts/node-flags.mjs'
import { dockerfileInstructions, stage } from './helpers/docker-build.ts'
import { REPO_ROOT } from '../sim/cluster/manifests.ts'
import { BUNDLE, freePort } from '../sim/fakes/sidecar-process.ts'

const ROOT = REPO_ROOT.replace(/\/$/, '')
const INSTRUCTIONS = dockerfileInstructions(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
const CACHE_STAGE = stage(INSTRUCTIONS, 'compile-cache')
const RUNTIME_STAGE = INSTRUCTIONS.slice(INSTRUCTIONS.findLastIndex(([keyword]) => keyword === 'FROM') + 1)

const values = (instructions: [string, string][], keyword: string) => instructions.filter(([k]) => k === keyword).map(([, rest]) => rest)
const only = (list: string[], what: string) => {
  if (list.length !== 1) throw new Error(`expected one ${what}, found ${list.length}: ${list.join(' | ')}`)
  return list[0]!
}
const WARM_RUN = JSON.parse(only(values(CACHE_STAGE, 'RUN'), 'RUN in the compile-cache stage')) as string[]
const CMD = JSON.parse(only(values(RUNTIME_STAGE, 'CMD'), 'CMD')) as string[]

test('the compile-cache stage runs the runtime image’s node with the CMD’s flags, as the CMD’s user, into what the runtime copies', (t) => {
  // [node, ...flags, warm script, entry]: the flags are part of the cache's key.
  t.is(WARM_RUN[0], '/nodejs/bin/node', 'the runtime image’s own Node binary')
  t.deepEqual(WARM_RUN.slice(-2), ['/warm/warm-compile-cache.mjs', CMD.at(-1)])
  t.deepEqual(WARM_RUN.slice(1, -2), CMD.slice(0, -1))
  t.deepEqual(CMD.slice(0, -1), IMAGE_NODE_FLAGS)
  // The user id is part of the cache directory's name.
  t.is(only(values(CACHE_STAGE, 'USER'), 'USER in the compile-cache stage'), only(values(RUNTIME_STAGE, 'USER'), 'USER in the runtime'))
  // The directory the stage fills is the one the runtime copies, to where its NODE_COMPILE_CACHE points.
  const made = /^NODE_COMPILE_CACHE=(\S+)$/.exec(only(values(CACHE_STAGE, 'ENV'), 'ENV in the compile-cache stage'))?.[1]
  const copy = only(
    values(RUNTIME_STAGE, 'COPY').filter((rest) => rest.includes('--from=compile-cache')),
    'COPY --from=compile-cache',
  ).split(/\s+/)
  t.is(copy.at(-2), `${made}/`)
  t.true(values(RUNTIME_STAGE, 'ENV').includes(`NODE_COMPILE_CACHE=${copy.at(-1)!.replace(/\/$/, '')}`))
})

type Started = { stderr: string; healthz: number }

/** Runs `args` under `node` as `uid` until the sidecar logs `started`, and returns its stderr and /healthz status. */
async function startOnce(node: string, args: string[], env: Record<string, string>, uid: number | undefined): Promise<Started> {
  const port = await freePort()
  const child = spawn(node, args, {
    env: { DRAIN_HOST: '127.0.0.1', DRAIN_PORT: String(port), NODE_DEBUG_NATIVE: 'COMPILE_CACHE', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(uid === undefined ? {} : { uid, gid: uid }),
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "started" within 20 s; stderr: ${stderr}`)), 20_000)
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (line.includes('"event":"started"')) {
          clearTimeout(timer)
          resolve()
        }
      })
      child.once('exit', (code) => reject(new Error(`exited with ${code} before "started"; stderr: ${stderr}`)))
    })
    const healthz = (await fetch(`http://127.0.0.1:${port}/healthz`)).status
    return { stderr, healthz }
  } finally {
    child.kill('SIGKILL')
    if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve))
  }
}

const accepted = (stderr: string, path: string) => stderr.includes(`V8 code cache for ESM file://${path} was accepted`)

test('the cache the warm script leaves, read-only, is accepted by the sidecar started with the CMD’s flags as its user', async (t) => {
  t.regex(process.version, /^v24\./)
  // As root (CI), the Dockerfile's user; otherwise this user: the cache directory is keyed by whichever runs.
  const uid = process.getuid?.() === 0 ? Number(only(values(RUNTIME_STAGE, 'USER'), 'USER').split(':')[0]) : undefined
  const dir = await mkdtemp(join(tmpdir(), 'dc-compile-cache-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await chmod(dir, 0o755)
  // The image's layout, under dir: the bundle in app/, the warm script, a cache directory the user may write.
  const app = join(dir, 'app')
  await cp(dirname(BUNDLE), app, { recursive: true })
  await cp(join(ROOT, 'image', 'warm-compile-cache.mjs'), join(dir, 'warm', 'warm-compile-cache.mjs'))
  const home = join(dir, 'home')
  await mkdir(home)
  if (uid !== undefined) await chown(home, uid, uid)
  const entry = join(app, 'drain-coordinator.mjs')
  // This Node, unless the user cannot reach it where it is installed (a checkout under a private home): then a copy.
  let node = process.execPath
  if (uid !== undefined && spawnSync(node, ['--version'], { uid, gid: uid }).status !== 0) {
    node = join(dir, 'node')
    await copyFile(process.execPath, node)
    await chmod(node, 0o755)
  }

  // The compile-cache stage's RUN: the script starts the sidecar, which flushes the cache once it listens; it exits 0.
  // A builder running in a pod may pass the cluster's service variables on: the warm start must not use them.
  const warm = spawn(node, [...WARM_RUN.slice(1, -2), join(dir, 'warm', 'warm-compile-cache.mjs'), entry], {
    env: {
      NODE_COMPILE_CACHE: join(home, 'compile-cache'),
      DRAIN_PORT: String(await freePort()),
      KUBERNETES_SERVICE_HOST: '198.18.0.1',
      KUBERNETES_SERVICE_PORT: '443',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(uid === undefined ? {} : { uid, gid: uid }),
  })
  let warmOut = ''
  warm.stdout.setEncoding('utf8').on('data', (chunk: string) => (warmOut += chunk))
  warm.stderr.setEncoding('utf8').on('data', (chunk: string) => (warmOut += chunk))
  t.is(await new Promise((resolve) => warm.once('exit', resolve)), 0, warmOut)
  t.true(warmOut.includes('"event":"endpoint_wait_disabled"'), `no API server in the warm start: ${warmOut}`)

  // The runtime stage's COPY: owned by root, 0555 throughout, so nothing can be written there.
  const shipped = join(dir, 'shipped-cache')
  await cp(join(home, 'compile-cache'), shipped, { recursive: true })
  const modes = async (path: string): Promise<void> => {
    await chown(path, 0, 0).catch(() => {}) // only root may; as another user the copy is that user's, made 0555
    await chmod(path, 0o555)
    for (const entry of await readdir(path, { withFileTypes: true }).catch(() => [])) await modes(join(path, entry.name))
  }
  await modes(shipped)

  const started = await startOnce(node, [...CMD.slice(0, -1), entry], { NODE_COMPILE_CACHE: shipped }, uid)
  t.is(started.healthz, 200)
  for (const file of ['drain-coordinator.mjs', 'main.mjs']) t.true(accepted(started.stderr, join(app, file)), `${file}: ${started.stderr}`)

  // What the agreement above guards against: other V8 flags (here one that changes V8's flag hash) miss the cache.
  const otherFlags = await startOnce(node, ['--no-opt', ...CMD.slice(0, -1), entry], { NODE_COMPILE_CACHE: shipped }, uid)
  t.is(otherFlags.healthz, 200, 'a miss is only slower, never an error')
  t.false(accepted(otherFlags.stderr, join(app, 'main.mjs')), otherFlags.stderr)
})
