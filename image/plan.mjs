// The docker buildx commands for the drain-coordinator image, as data: pure functions of the package version,
// the git commit and the options, so that build.mjs, push.mjs and the tests agree on every argument.
import { fileURLToPath } from 'node:url'

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '')
export const PLATFORMS = ['linux/amd64', 'linux/arm64']

/**
 * @param {object} o
 * @param {string} o.image      repository without tag, e.g. ghcr.io/acme/drain-coordinator
 * @param {string} o.version    package.json version
 * @param {string} o.revision   full git commit
 * @param {boolean} o.dirty     the work tree has uncommitted changes
 * @param {string} o.source     repository URL for org.opencontainers.image.source
 * @param {string} o.license    SPDX expression from package.json
 * @param {string} o.description package.json description
 * @param {boolean} o.push
 * @param {string[]} [o.platforms]
 * @param {string} [o.builder]  a buildx builder name (multi-platform needs a docker-container or remote driver)
 * @returns {{ tags: string[], labels: Record<string, string>, commands: string[][] }}
 */
export function imagePlan({ image, version, revision, dirty, source, license, description, push, platforms = PLATFORMS, builder }) {
  if (!/^[0-9a-f]{40}$/.test(revision)) throw new Error(`revision must be a full 40-hex git commit, got ${JSON.stringify(revision)}`)
  if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) throw new Error(`version must be semver, got ${JSON.stringify(version)}`)
  const commitTag = `sha-${revision.slice(0, 12)}${dirty ? '-dirty' : ''}`
  // A dirty tree builds under its commit tag only: a version tag must always mean the same bytes.
  const tags = dirty ? [`${image}:${commitTag}`] : [`${image}:${version}`, `${image}:${commitTag}`]
  const labels = {
    'org.opencontainers.image.title': 'drain-coordinator',
    'org.opencontainers.image.description': description,
    'org.opencontainers.image.source': source,
    'org.opencontainers.image.version': version,
    'org.opencontainers.image.revision': revision,
    'org.opencontainers.image.licenses': license,
  }
  const build = [
    'docker',
    'buildx',
    'build',
    ...(builder ? ['--builder', builder] : []),
    '--platform',
    platforms.join(','),
    ...Object.entries(labels).flatMap(([key, value]) => ['--label', `${key}=${value}`]),
    ...tags.flatMap((tag) => ['--tag', tag]),
    // Without --push a multi-platform result stays in the builder's cache: the build is checked, nothing is loaded.
    ...(push ? ['--push'] : []),
    '--file',
    `${REPO_ROOT}/Dockerfile`,
    REPO_ROOT,
  ]
  const commands = [build]
  // After a push, show the manifest list: one image per platform under each tag.
  if (push) commands.push(['docker', 'buildx', 'imagetools', 'inspect', tags[0]])
  return { tags, labels, commands }
}

/** A POSIX shell rendering of one argv: what --dry-run prints, and what a person can paste. */
export function renderCommand(argv) {
  return argv.map((arg) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`)).join(' ')
}

/**
 * The URL for org.opencontainers.image.source: --source if given, else the git remote "origin", else package.json's
 * `repository` (a string or { url }, the same URL as the Dockerfile's SOURCE default). undefined when none is known.
 * @param {{ source?: string, origin?: string, pkg: { repository?: string | { url?: string } } }} o
 */
export function sourceUrl({ source, origin, pkg }) {
  if (source !== undefined && source !== '') return source
  const fromOrigin = origin === undefined ? undefined : sourceUrlFromRemote(origin)
  if (fromOrigin) return fromOrigin
  const repository = typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url
  return repository ? sourceUrlFromRemote(repository) : undefined
}

/** https URL of a git remote (git@host:owner/repo.git and ssh:// forms too), or undefined. */
function sourceUrlFromRemote(remote) {
  const text = remote.trim()
  if (text === '') return undefined
  const scp = /^[\w.-]+@([\w.-]+):(.+?)(\.git)?$/.exec(text)
  if (scp) return `https://${scp[1]}/${scp[2]}`
  try {
    const url = new URL(text)
    return `https://${url.hostname}${url.pathname.replace(/\.git$/, '')}`
  } catch {
    return undefined
  }
}
