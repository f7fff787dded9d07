/**
 * The Dockerfile's build stage without Docker: the build context as .dockerignore makes it, and the stage's
 * WORKDIR, COPY and RUN instructions replayed into a temporary directory. Small on purpose: it implements what
 * this repository's Dockerfile and .dockerignore use and throws on anything else, rather than guessing.
 */
import { execFile } from 'node:child_process'
import { copyFile, cp, lstat, mkdir, readdir, stat, symlink } from 'node:fs/promises'
import { dirname, join, posix } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

type Pattern = { negated: boolean; text: string; regex: RegExp; segments: string[] }

/** One glob (Go filepath.Match syntax plus Docker's `**`) as an anchored regular expression over a slash path. */
function globRegex(glob: string): RegExp {
  let source = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === '*' && glob[i + 1] === '*') {
      // `**/` is any number of directories, zero included; a trailing `**` is anything.
      if (glob[i + 2] === '/') {
        source += '(?:.*/)?'
        i += 2
      } else {
        source += '.*'
        i += 1
      }
    } else if (c === '*') source += '[^/]*'
    else if (c === '?') source += '[^/]'
    else if (c === '[' || c === '\\')
      throw new Error(`.dockerignore: character classes and escapes are not supported by this matcher: ${glob}`)
    else source += c.replace(/[.+^${}()|\]]/g, '\\$&')
  }
  return new RegExp(`^${source}$`)
}

/**
 * Parses .dockerignore as Docker does: one pattern a line, `#` lines are comments, blank lines are skipped, a
 * leading `!` makes an exception, and each pattern is cleaned (filepath.Clean, leading `/` dropped).
 */
function parseDockerignore(text: string): Pattern[] {
  const patterns: Pattern[] = []
  for (const raw of text.split('\n')) {
    let line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const negated = line.startsWith('!')
    if (negated) line = line.slice(1).trim()
    const cleaned = posix.normalize(line).replace(/^\/+/, '').replace(/\/+$/, '')
    if (cleaned === '' || cleaned === '.') continue
    patterns.push({ negated, text: cleaned, regex: globRegex(cleaned), segments: cleaned.split('/') })
  }
  return patterns
}

/**
 * Whether a context-relative path is left out: the last pattern that matches the path or one of its parent
 * directories decides (moby/patternmatcher's MatchesOrParentMatches).
 */
function isIgnored(patterns: Pattern[], path: string): boolean {
  const parts = path.split('/')
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'))
  let ignored = false
  for (const pattern of patterns) {
    if (candidates.some((candidate) => pattern.regex.test(candidate))) ignored = !pattern.negated
  }
  return ignored
}

/** Whether an exception pattern could admit something strictly below the directory `dir`. */
function exceptionReachesBelow(pattern: Pattern, dir: string): boolean {
  const parts = dir.split('/')
  for (let i = 0; i < parts.length; i++) {
    const segment = pattern.segments[i]
    if (segment === undefined) return false
    if (segment.includes('**')) return true
    if (!globRegex(segment).test(parts[i]!)) return false
  }
  return pattern.segments.length > parts.length
}

/** Every regular file of the build context under `root`, as sorted slash paths relative to it. */
export async function contextFiles(root: string, dockerignore: string): Promise<string[]> {
  const patterns = parseDockerignore(dockerignore)
  const files: string[] = []
  const walk = async (relative: string) => {
    for (const entry of await readdir(join(root, relative))) {
      const path = relative === '' ? entry : `${relative}/${entry}`
      const info = await lstat(join(root, path))
      if (info.isDirectory()) {
        // An ignored directory is still walked when an exception may admit something inside it (as Docker does).
        if (!isIgnored(patterns, path) || patterns.some((p) => p.negated && exceptionReachesBelow(p, path))) await walk(path)
      } else if (!isIgnored(patterns, path)) {
        if (!info.isFile()) throw new Error(`build context: ${path} is neither a file nor a directory`)
        files.push(path)
      }
    }
  }
  await walk('')
  return files.sort()
}

/** Dockerfile instructions, continuation lines joined and comments dropped, as [keyword, rest]. */
export function dockerfileInstructions(text: string): [string, string][] {
  const logical: string[] = []
  let pending = ''
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line)) continue // comments, also between continuation lines
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `
      continue
    }
    const full = (pending + line).trim()
    pending = ''
    if (full !== '') logical.push(full)
  }
  return logical.map((line) => {
    const space = line.search(/\s/)
    return [line.slice(0, space).toUpperCase(), line.slice(space).trim()]
  })
}

/** The instructions of the stage named `name` (`FROM ... AS name`), FROM excluded. */
export function stage(instructions: [string, string][], name: string): [string, string][] {
  const start = instructions.findIndex(([keyword, rest]) => keyword === 'FROM' && new RegExp(`\\sAS\\s+${name}$`, 'i').test(rest))
  if (start === -1) throw new Error(`no stage named ${name}`)
  const end = instructions.findIndex(([keyword], i) => i > start && keyword === 'FROM')
  return instructions.slice(start + 1, end === -1 ? undefined : end)
}

export type ReplayOptions = {
  /** The directory holding the build context (already filtered). */
  context: string
  /** Stands for the container's `/`: WORKDIR and COPY destinations land under it. */
  rootfs: string
  /** What `RUN npm ci ...` does here: provide node_modules in the working directory. */
  npmCi: (workdir: string) => Promise<void>
  /** Environment of every other RUN (shell form, /bin/sh -c, as Docker runs it). */
  env: NodeJS.ProcessEnv
}

/** Replays a stage's WORKDIR, COPY and RUN instructions; returns the RUN commands it executed. */
export async function replayStage(instructions: [string, string][], { context, rootfs, npmCi, env }: ReplayOptions): Promise<string[]> {
  let workdir = '/'
  const ran: string[] = []
  const inRootfs = (path: string) => join(rootfs, posix.resolve(workdir, path))
  for (const [keyword, rest] of instructions) {
    if (keyword === 'WORKDIR') {
      workdir = posix.resolve(workdir, rest)
      await mkdir(inRootfs('.'), { recursive: true })
    } else if (keyword === 'COPY') {
      const words = rest.split(/\s+/)
      if (words.some((w) => w.startsWith('--')) || rest.startsWith('[')) throw new Error(`COPY form not supported here: ${rest}`)
      const dest = words.pop()!
      if (words.length > 1 && !dest.endsWith('/')) throw new Error(`COPY with several sources needs a directory destination: ${rest}`)
      for (const source of words) {
        if (/[*?[]/.test(source)) throw new Error(`COPY wildcards not supported here: ${source}`)
        const from = join(context, posix.normalize(source))
        // Docker fails the build when a source is not in the context: stat throws ENOENT the same way.
        const info = await stat(from).catch(() => {
          throw new Error(`COPY ${source}: not found in the build context (is it in .dockerignore?)`)
        })
        if (info.isDirectory()) await cp(from, inRootfs(dest), { recursive: true })
        else {
          const target = dest.endsWith('/') ? join(inRootfs(dest), posix.basename(source)) : inRootfs(dest)
          await mkdir(dirname(target), { recursive: true })
          await copyFile(from, target)
        }
      }
    } else if (keyword === 'RUN') {
      if (rest.startsWith('[') || rest.startsWith('--')) throw new Error(`RUN form not supported here: ${rest}`)
      if (/^npm ci(\s|$)/.test(rest)) await npmCi(inRootfs('.'))
      else {
        try {
          await run('/bin/sh', ['-c', rest], { cwd: inRootfs('.'), env, maxBuffer: 16 * 1024 * 1024 })
        } catch (error) {
          const e = error as { code?: number; stdout?: string; stderr?: string }
          throw new Error(`RUN ${rest} failed with exit code ${e.code}:\n${e.stdout ?? ''}${e.stderr ?? ''}`)
        }
      }
      ran.push(rest)
    } else if (keyword !== 'LABEL') {
      // ARG and ENV would change what RUN sees: not replayed, so refused rather than silently skipped.
      throw new Error(`build-stage instruction not supported here: ${keyword} ${rest}`)
    }
  }
  return ran
}

/** Copies the listed context files from `root` into `to`, keeping their relative paths. */
export async function stageContext(root: string, files: string[], to: string): Promise<void> {
  for (const file of files) {
    await mkdir(dirname(join(to, file)), { recursive: true })
    await copyFile(join(root, file), join(to, file))
  }
}

/** `npm ci` stand-in: the repository's installed node_modules, linked (no network, same lockfile). */
export function linkNodeModules(repoRoot: string): (workdir: string) => Promise<void> {
  return (workdir) => symlink(join(repoRoot, 'node_modules'), join(workdir, 'node_modules'), 'dir')
}
