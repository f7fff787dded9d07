// Test tooling built from Go modules (kustomize, helm, the Kubernetes components, linters), cached by its inputs.
// Each tool is a folder test/tools/NAME holding a Go module (go.mod and go.sum pin every version) and build.sh,
// which builds the binaries into the folder it is given. The cache folder's name carries a hash of the tool's
// folder, the Go version and the platform, so a version bump builds anew and two checkouts share what matches.
// Usable as a module (tests resolve binaries with toolBinary) and as a command:
//   node scripts/tools.mjs [NAME ...]    build what is missing (all tools without names), print where they are
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { homedir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const TOOLS_DIR = fileURLToPath(new URL('../test/tools/', import.meta.url))

export function cacheRoot() {
  return process.env.DRAIN_TOOLS_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'drain-coordinator', 'tools')
}

export function toolNames() {
  return readdirSync(TOOLS_DIR, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(TOOLS_DIR, entry.name, 'build.sh')))
    .map((entry) => entry.name)
    .sort()
}

let goVersion
function goVersionOrFail() {
  if (goVersion !== undefined) return goVersion
  const go = spawnSync('go', ['env', 'GOVERSION'], { encoding: 'utf8' })
  if (go.error || go.status !== 0) {
    throw new Error(
      'the tests build their tools (kustomize, helm, the Kubernetes components) with Go: no `go` on PATH. Install Go 1.26 or newer (go.dev/dl, or /usr/local/go/bin on PATH) and run again',
    )
  }
  goVersion = go.stdout.trim()
  return goVersion
}

/** The cache folder of one tool: where its binaries are once built. */
export function toolCacheDir(name) {
  const folder = join(TOOLS_DIR, name)
  if (!existsSync(join(folder, 'build.sh'))) throw new Error(`no test tool ${JSON.stringify(name)}: expected ${folder}/build.sh`)
  const hash = createHash('sha256')
  for (const file of readdirSync(folder).sort())
    hash
      .update(file)
      .update('\0')
      .update(readFileSync(join(folder, file)))
      .update('\0')
  hash.update(goVersionOrFail()).update(process.platform).update(process.arch)
  return join(cacheRoot(), `${name}-${hash.digest('hex').slice(0, 16)}`)
}

/** Builds the tool unless its cache folder exists; returns that folder. */
export function ensureTool(name) {
  const dir = toolCacheDir(name)
  if (existsSync(dir)) return dir
  mkdirSync(cacheRoot(), { recursive: true })
  removeStalePartials(dir)
  // Built beside its final place and renamed when whole, so a concurrent or interrupted build never leaves half a tool.
  const partial = `${dir}.partial-${process.pid}`
  rmSync(partial, { recursive: true, force: true })
  mkdirSync(partial)
  const started = Date.now()
  log(`tools: building ${name} (cold builds take minutes; later runs reuse ${dir})`)
  try {
    execFileSync('bash', [join(TOOLS_DIR, name, 'build.sh'), partial], {
      cwd: join(TOOLS_DIR, name),
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
    })
  } catch (error) {
    rmSync(partial, { recursive: true, force: true })
    throw new Error(`tools: building ${name} failed (${error.message.split('\n')[0]}); see the output above`, { cause: error })
  }
  try {
    renameSync(partial, dir)
  } catch (error) {
    // Another process finished the same build first: its copy is as good as ours.
    rmSync(partial, { recursive: true, force: true })
    if (!existsSync(dir)) throw error
  }
  log(`tools: built ${name} in ${Math.round((Date.now() - started) / 1000)} s`)
  return dir
}

/**
 * Removes `${dir}.partial-PID` folders left by builds that were killed (their PID is gone); a live build's folder
 * is left alone. A reused PID only keeps a stale folder a while longer.
 */
function removeStalePartials(dir) {
  const prefix = `${basename(dir)}.partial-`
  for (const entry of readdirSync(dirname(dir))) {
    if (!entry.startsWith(prefix)) continue
    const pid = Number(entry.slice(prefix.length))
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) continue
    rmSync(join(dirname(dir), entry), { recursive: true, force: true })
  }
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return error.code === 'EPERM'
  }
}

function log(line) {
  process.stderr.write(`${line}\n`)
}

/** Path of one binary of a built tool; a clear error when it was not built (run the README's test command). */
export function toolBinary(name, binary = name) {
  const path = join(toolCacheDir(name), binary)
  if (!existsSync(path))
    throw new Error(`${binary} (test tool ${name}) is not built: run \`node scripts/tools.mjs ${name}\` or the README's test command`)
  return path
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const names = process.argv.length > 2 ? process.argv.slice(2) : toolNames()
  try {
    for (const name of names) process.stdout.write(`${name}: ${ensureTool(name)}\n`)
  } catch (error) {
    process.stderr.write(`${error.message}\n`)
    process.exit(1)
  }
}
