#!/usr/bin/env zx
// Builds the drain-coordinator image for linux/amd64 and linux/arm64 with docker buildx, tagged
// <image>:<package.json version> and <image>:sha-<12 hex of the commit>. `--push` pushes both tags (push.mjs is
// the same with --push), `--dry-run` prints the exact commands instead of running them.
//
//   node image/build.mjs [--image ghcr.io/acme/drain-coordinator] [--push] [--dry-run]
//                        [--platforms linux/amd64,linux/arm64] [--builder NAME] [--revision SHA] [--source URL]
//
// --image defaults to $DRAIN_IMAGE, then "drain-coordinator" (build only: a push needs a registry path).
// --revision defaults to `git rev-parse HEAD`; with uncommitted changes the tag gets -dirty and no version tag,
// and a push is refused. --source defaults to the git remote "origin", then package.json's repository.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { $, minimist } from 'zx'
import { PLATFORMS, REPO_ROOT, imagePlan, renderCommand, sourceUrl } from './plan.mjs'

export async function main(argvList, { forcePush = false } = {}) {
  const argv = minimist(argvList, { boolean: ['push', 'dry-run', 'help'], string: ['image', 'platforms', 'builder', 'revision', 'source'] })
  if (argv.help) {
    console.log(
      readFileSync(fileURLToPath(import.meta.url), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('//'))
        .map((l) => l.slice(3))
        .join('\n'),
    )
    return 0
  }
  const push = forcePush || argv.push
  const pkg = JSON.parse(readFileSync(`${REPO_ROOT}/package.json`, 'utf8'))
  const git = (...args) => $({ cwd: REPO_ROOT, quiet: true, nothrow: true })`git ${args}`
  let revision = argv.revision
  let dirty = false
  if (revision === undefined) {
    const head = await git('rev-parse', 'HEAD')
    if (head.exitCode !== 0) return fail('not a git checkout: pass --revision <40-hex commit>')
    revision = head.stdout.trim()
    dirty = (await git('status', '--porcelain', '--untracked-files=no')).stdout.trim() !== ''
  }
  let origin
  if (argv.source === undefined) {
    const remote = await git('remote', 'get-url', 'origin')
    if (remote.exitCode === 0) origin = remote.stdout
  }
  const source = sourceUrl({ source: argv.source, origin, pkg })
  if (!source)
    return fail(
      'no source URL for org.opencontainers.image.source: pass --source <repository URL> (or add a git remote "origin", or "repository" to package.json)',
    )
  const image = argv.image ?? process.env.DRAIN_IMAGE ?? 'drain-coordinator'
  if (push && !image.includes('/')) return fail(`--push needs a registry path, e.g. --image ghcr.io/acme/drain-coordinator (got ${image})`)
  if (push && dirty) return fail('refusing to push from a work tree with uncommitted changes: commit first (or build without --push)')

  let plan
  try {
    plan = imagePlan({
      image,
      version: pkg.version,
      revision,
      dirty,
      source,
      license: pkg.license,
      description: pkg.description,
      push,
      platforms: argv.platforms ? String(argv.platforms).split(',') : PLATFORMS,
      builder: argv.builder,
    })
  } catch (error) {
    return fail(error.message)
  }
  for (const command of plan.commands) {
    console.log(renderCommand(command))
    if (!argv['dry-run']) {
      const result = await $({ cwd: REPO_ROOT, stdio: 'inherit', nothrow: true })`${command}`
      if (result.exitCode !== 0) return fail(`${command.slice(0, 3).join(' ')} failed with exit code ${result.exitCode}`)
    }
  }
  return 0
}

function fail(message) {
  console.error(`image: ${message}`)
  return 1
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await main(process.argv.slice(2))
}
