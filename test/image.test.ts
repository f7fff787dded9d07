/**
 * The image: image/build.mjs and image/push.mjs print the exact docker buildx commands with --dry-run (no Docker
 * engine runs here), the Dockerfile keeps to its promises, and the bundle it ships runs with nothing but Node 24.
 */
import { execFile, spawn } from 'node:child_process'
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises'
import { existsSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import test, { type ExecutionContext } from 'ava'
import { IMAGE_NODE_FLAGS } from '../scripts/node-flags.mjs'
import { DEFAULTS } from '../src/config.ts'
import { contextFiles, dockerfileInstructions, linkNodeModules, replayStage, stage, stageContext } from './helpers/docker-build.ts'
import { REPO_ROOT } from '../sim/cluster/manifests.ts'
import { BUNDLE, freePort } from '../sim/fakes/sidecar-process.ts'

const run = promisify(execFile)
const PKG = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  version: string
  license: string
  description: string
  scripts: Record<string, string>
  repository?: { type: string; url: string }
}
const ROOT = REPO_ROOT.replace(/\/$/, '')
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
const REVISION = '0123456789abcdef0123456789abcdef01234567'
const SOURCE = 'https://github.com/acme/drain-coordinator'

async function script(
  name: 'build' | 'push',
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(ROOT, 'image', `${name}.mjs`), ...args], {
      cwd: tmpdir(),
      env: { ...process.env, ...env },
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

const LABELS = [
  '--label org.opencontainers.image.title=drain-coordinator',
  // Spaces and the apostrophe make this one a single-quoted shell word.
  `--label 'org.opencontainers.image.description=${PKG.description.replaceAll("'", "'\\''")}'`,
  `--label org.opencontainers.image.source=${SOURCE}`,
  `--label org.opencontainers.image.version=${PKG.version}`,
  `--label org.opencontainers.image.revision=${REVISION}`,
  `--label org.opencontainers.image.licenses=${PKG.license}`,
].join(' ')

test('build --dry-run prints the multi-arch buildx build, tagged with the package version and the commit', async (t) => {
  const { code, stdout } = await script('build', [
    '--dry-run',
    '--image',
    'ghcr.io/acme/drain-coordinator',
    '--revision',
    REVISION,
    '--source',
    SOURCE,
  ])
  t.is(code, 0)
  t.is(
    stdout,
    `docker buildx build --platform linux/amd64,linux/arm64 ${LABELS} ` +
      `--tag ghcr.io/acme/drain-coordinator:${PKG.version} --tag ghcr.io/acme/drain-coordinator:sha-0123456789ab ` +
      `--file ${ROOT}/Dockerfile ${ROOT}\n`,
  )
})

test('push --dry-run prints the same build with --push, then the manifest list inspection', async (t) => {
  const { code, stdout } = await script('push', [
    '--dry-run',
    '--image',
    'ghcr.io/acme/drain-coordinator',
    '--revision',
    REVISION,
    '--source',
    SOURCE,
    '--builder',
    'multiarch',
  ])
  t.is(code, 0)
  t.is(
    stdout,
    `docker buildx build --builder multiarch --platform linux/amd64,linux/arm64 ${LABELS} ` +
      `--tag ghcr.io/acme/drain-coordinator:${PKG.version} --tag ghcr.io/acme/drain-coordinator:sha-0123456789ab ` +
      `--push --file ${ROOT}/Dockerfile ${ROOT}\n` +
      `docker buildx imagetools inspect ghcr.io/acme/drain-coordinator:${PKG.version}\n`,
  )
})

test('without --revision the commit tag comes from git, marked -dirty (and no version tag) for uncommitted changes', async (t) => {
  const head = (await run('git', ['rev-parse', 'HEAD'], { cwd: ROOT })).stdout.trim()
  const dirty = (await run('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT })).stdout.trim() !== ''
  const { code, stdout } = await script('build', ['--dry-run', '--image', 'registry.example/dc', '--source', SOURCE])
  t.is(code, 0)
  t.true(stdout.includes(`--label org.opencontainers.image.revision=${head} `))
  const tags = [...stdout.matchAll(/--tag (\S+)/g)].map((m) => m[1])
  t.deepEqual(
    tags,
    dirty
      ? [`registry.example/dc:sha-${head.slice(0, 12)}-dirty`]
      : [`registry.example/dc:${PKG.version}`, `registry.example/dc:sha-${head.slice(0, 12)}`],
  )
})

test("without --source and without a git remote, the source label is package.json's repository, the Dockerfile's default", async (t) => {
  // A git directory with no remote at all: what `git remote get-url origin` sees in a fresh clone-less checkout.
  const gitDir = await mkdtemp(join(tmpdir(), 'drain-coordinator-no-remote-'))
  t.teardown(() => rm(gitDir, { recursive: true, force: true }))
  await run('git', ['init', '--quiet', '--bare', gitDir])
  const { code, stdout, stderr } = await script(
    'build',
    ['--dry-run', '--image', 'ghcr.io/acme/drain-coordinator', '--revision', REVISION],
    { GIT_DIR: gitDir },
  )
  t.is(stderr, '')
  t.is(code, 0)
  const repository = 'https://github.com/drain-coordinator/drain-coordinator'
  t.is(
    stdout,
    `docker buildx build --platform linux/amd64,linux/arm64 ${LABELS.replace(`source=${SOURCE}`, `source=${repository}`)} ` +
      `--tag ghcr.io/acme/drain-coordinator:${PKG.version} --tag ghcr.io/acme/drain-coordinator:sha-0123456789ab ` +
      `--file ${ROOT}/Dockerfile ${ROOT}\n`,
  )
  // One URL in both places: package.json's repository and the Dockerfile's default for a hand build.
  t.deepEqual(PKG.repository, { type: 'git', url: repository })
  t.is(/^ARG SOURCE=(\S+)$/m.exec(DOCKERFILE)?.[1], PKG.repository?.url)
})

test('npm run image:build -- --dry-run works in this checkout as it is', async (t) => {
  const { stdout } = await run('npm', ['run', '--silent', 'image:build', '--', '--dry-run'], { cwd: ROOT })
  t.regex(stdout, /^docker buildx build .*--label org\.opencontainers\.image\.source=https:\/\/\S+ /)
})

test('a push needs a registry path, and a bad revision is refused', async (t) => {
  const noRegistry = await script('push', ['--dry-run', '--image', 'drain-coordinator', '--revision', REVISION, '--source', SOURCE])
  t.is(noRegistry.code, 1)
  t.regex(noRegistry.stderr, /--push needs a registry path/)
  t.is(noRegistry.stdout, '')
  const badRevision = await script('build', ['--dry-run', '--revision', 'main', '--source', SOURCE])
  t.is(badRevision.code, 1)
  t.regex(badRevision.stderr, /40-hex/)
})

test('npm scripts image:build and image:push run these scripts', (t) => {
  t.is(PKG.scripts['image:build'], 'node image/build.mjs')
  t.is(PKG.scripts['image:push'], 'node image/push.mjs')
})

test('the Dockerfile builds on Node 24, runs the bundle and its compile cache on distroless Node 24 as 65532, exposes the port, has no HEALTHCHECK', (t) => {
  const instructions = DOCKERFILE.split('\n').filter((line) => /^[A-Z]+\s/.test(line))
  const froms = instructions.filter((line) => line.startsWith('FROM '))
  t.is(froms.length, 3, 'three stages')
  t.regex(froms[0]!, /^FROM --platform=\$BUILDPLATFORM node:24-[\w.-]+ AS build$/)
  // The compile cache is made by the runtime image itself (test/image-compile-cache.test.ts checks the rest).
  t.is(froms[1], 'FROM gcr.io/distroless/nodejs24-debian12:nonroot AS compile-cache')
  t.is(froms[2], 'FROM gcr.io/distroless/nodejs24-debian12:nonroot')
  const runtime = instructions.slice(instructions.indexOf(froms[2]!))
  const copies = runtime.filter((line) => line.startsWith('COPY '))
  // 0555, not 0444: BuildKit 0.21 and later applies --chmod to the directories a COPY copies and creates, and
  // without x for others user 65532 could not enter /app.
  t.deepEqual(copies, [
    'COPY --from=build --chown=0:0 --chmod=0555 /src/dist/ /app/',
    'COPY --from=compile-cache --chown=0:0 --chmod=0555 /home/nonroot/compile-cache/ /app/compile-cache/',
  ])
  t.true(runtime.includes('ENV NODE_COMPILE_CACHE=/app/compile-cache'))
  t.false(
    runtime.some((line) => line.startsWith('RUN ')),
    'no RUN in the runtime stage: it has no shell',
  )
  t.true(runtime.includes('USER 65532:65532'))
  t.true(runtime.includes(`EXPOSE ${DEFAULTS.port}`))
  // node (the base image's ENTRYPOINT) gets the image's flags (scripts/node-flags.mjs), then the bundle.
  const cmd = JSON.parse(runtime.find((line) => line.startsWith('CMD '))!.slice(4)) as string[]
  t.is(cmd.at(-1), '/app/drain-coordinator.mjs')
  for (const flag of IMAGE_NODE_FLAGS) t.true(cmd.slice(0, -1).includes(flag), `CMD lacks ${flag}: ${JSON.stringify(cmd)}`)
  t.false(/^HEALTHCHECK/m.test(DOCKERFILE))
  t.true(DOCKERFILE.includes('RUN npm ci') && DOCKERFILE.includes('RUN npm run build:bundle'))
  // The same OCI label keys as the build script passes, so a hand build is labelled too.
  const labelKeys = [...DOCKERFILE.matchAll(/(org\.opencontainers\.image\.[a-z]+)=/g)].map((m) => m[1]).sort()
  t.deepEqual(labelKeys, [...LABELS.matchAll(/--label '?(org\.opencontainers\.image\.[a-z]+)=/g)].map((m) => m[1]).sort())
  t.true(DOCKERFILE.includes(`org.opencontainers.image.licenses="${PKG.license}"`))
  t.true(DOCKERFILE.includes(`org.opencontainers.image.description="${PKG.description}"`))
})

test('.dockerignore sends only what the build stage copies', async (t) => {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
  t.deepEqual(lines, [
    '*',
    '!package.json',
    '!package-lock.json',
    '!tsconfig*.json',
    '!src/',
    '!scripts/bundle.mjs',
    '!image/warm-compile-cache.mjs',
  ])
  const files = await contextFiles(ROOT, lines.join('\n'))
  const copied = [...DOCKERFILE.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(' '))
  for (const source of copied)
    t.true(
      files.some((f) => f === source || f.startsWith(source.endsWith('/') ? source : `${source}/`)),
      `${source} is in the build context`,
    )
  // Nothing else: every file in the context is one a COPY takes.
  for (const file of files)
    t.true(
      copied.some((source) => file === source || (source.endsWith('/') && file.startsWith(source))),
      `${file} is copied`,
    )
  t.deepEqual(
    files.filter((f) => !f.startsWith('src/')),
    ['image/warm-compile-cache.mjs', 'package-lock.json', 'package.json', 'scripts/bundle.mjs', 'tsconfig.build.json', 'tsconfig.json'],
  )
})

test('npm script build:bundle type-checks src/ only, then bundles; build still checks everything', (t) => {
  t.is(PKG.scripts['build:bundle'], 'tsc -p tsconfig.build.json && node scripts/bundle.mjs')
  t.is(PKG.scripts.build, 'tsc -p tsconfig.json && node scripts/bundle.mjs')
  const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8').replace(/^\s*\/\/.*$/gm, '')) as {
    extends: string
    include: string[]
  }
  t.deepEqual(build, { extends: './tsconfig.json', include: ['src'] })
})

/** Runs a bundle the way the image does (no PATH, no NODE_PATH) and returns its /healthz answer, or a failure. */
async function serveHealthz(t: ExecutionContext, bundle: string, cwd: string): Promise<Response> {
  const port = await freePort()
  const child = spawn(process.execPath, [...IMAGE_NODE_FLAGS, bundle], {
    cwd,
    env: { DRAIN_PORT: String(port), DRAIN_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  t.teardown(async () => {
    child.kill('SIGKILL')
    await exited
  })
  let answer: Response | undefined
  for (const until = Date.now() + 20_000; Date.now() < until && child.exitCode === null;) {
    answer = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined)
    if (answer) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  if (!answer) throw new Error(`no answer on /healthz from ${bundle}; stderr: ${stderr}`)
  return answer
}

test('the bundle starts and answers /healthz from a directory holding only dist/, with only Node 24', async (t) => {
  t.regex(process.version, /^v24\./)
  const dir = await mkdtemp(join(tmpdir(), 'drain-coordinator-image-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const shipped = await readdir(dirname(BUNDLE))
  for (const file of shipped) await copyFile(join(dirname(BUNDLE), file), join(dir, file))
  t.true(shipped.includes('drain-coordinator.mjs') && shipped.includes('main.mjs'), `dist/: ${shipped.join(' ')}`)
  t.true(
    shipped.every((file) => file.endsWith('.mjs')),
    `only modules: ${shipped.join(' ')}`,
  )
  // As in the image: no PATH, no NODE_PATH, no node_modules anywhere above the file.
  const answer = await serveHealthz(t, join(dir, 'drain-coordinator.mjs'), dir)
  t.is(answer.status, 200)
  t.like(await answer.json(), { healthy: true, state: 'serving' })
  const port = new URL(answer.url).port
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  t.true(metrics.includes(`drain_coordinator_build_info{version="${PKG.version}"} 1`), 'the version is inlined in the bundle')
  // Node's process metrics come from a chunk loaded once the port is open: it must be in dist/ and load from there.
  let withProcess = metrics
  for (let i = 0; i < 50 && !/^process_resident_memory_bytes \d+/m.test(withProcess); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    withProcess = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  }
  t.regex(withProcess, /^process_resident_memory_bytes \d+/m)
})

test('the build stage succeeds on the build context .dockerignore admits, and its bundle starts', async (t) => {
  t.regex(process.version, /^v24\./)
  const dir = await mkdtemp(join(tmpdir(), 'drain-coordinator-build-stage-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // The context Docker would send: every file of the repository that .dockerignore does not leave out.
  const files = await contextFiles(ROOT, readFileSync(join(ROOT, '.dockerignore'), 'utf8'))
  t.true(files.includes('package.json') && files.some((f) => f.startsWith('src/')), `context: ${files.join(' ')}`)
  t.false(
    files.some((f) => f.startsWith('node_modules/') || f.startsWith('dist/') || f.startsWith('.git/') || f.startsWith('test/')),
    'no node_modules, dist, .git or tests in the context',
  )
  await stageContext(ROOT, files, join(dir, 'context'))
  // The build stage's own instructions, in order; `npm ci` is the repository's node_modules, linked.
  const instructions = dockerfileInstructions(DOCKERFILE)
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('npm_')))
  env.PATH = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`
  const ran = await replayStage(stage(instructions, 'build'), {
    context: join(dir, 'context'),
    rootfs: join(dir, 'rootfs'),
    npmCi: linkNodeModules(ROOT),
    env,
  })
  t.true(
    ran.some((command) => command.startsWith('npm ci')),
    'the stage installs with npm ci',
  )
  t.true(ran.length >= 2, 'and builds')
  // What the runtime stage copies out of the build stage exists, and it serves.
  const fromBuild = instructions
    .filter(([keyword, rest]) => keyword === 'COPY' && rest.includes('--from=build'))
    .map(([, rest]) => rest.split(/\s+/).at(-2)!)
  t.deepEqual(fromBuild, ['/src/dist/', '/src/dist/'], 'the compile-cache stage and the runtime stage')
  const bundle = join(dir, 'rootfs', fromBuild[0]!, 'drain-coordinator.mjs')
  t.true(existsSync(bundle), `${fromBuild[0]}drain-coordinator.mjs was built`)
  const answer = await serveHealthz(t, bundle, dirname(bundle))
  t.is(answer.status, 200)
  t.like(await answer.json(), { healthy: true, state: 'serving' })
})
