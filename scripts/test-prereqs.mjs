// Everything the tests need that npm does not install: Debian packages (installed when run as root) and the test
// tools built from Go modules (scripts/tools.mjs). Stops at the first thing it cannot get, with one line naming it
// and how to get it; it never lets a test be skipped for want of a tool.
//   node scripts/test-prereqs.mjs
import { spawnSync } from 'node:child_process'
import { ensureTool, toolNames } from './tools.mjs'

/**
 * Debian package → the command the tests run from it. Debian's nodejs (18 or 20, older than the Node 24 the project
 * needs) is what test/node-version.test.ts starts the bundle with, by its path; actionlint checks the release
 * workflow's shell steps with shellcheck; openssl makes the cluster tier's certificates;
 * iproute2 makes the network namespaces of the simulator and the data-plane test, where kube-proxy programs nftables; conntrack
 * counts the connections the data-plane bench finds pinned to a deleted pod.
 */
const DEBIAN_PACKAGES = {
  prometheus: 'promtool',
  nodejs: '/usr/bin/node',
  shellcheck: 'shellcheck',
  openssl: 'openssl',
  iproute2: 'ip',
  nftables: 'nft',
  conntrack: 'conntrack',
}

function fail(message) {
  process.stderr.write(`test prerequisites: ${message}\n`)
  process.exit(1)
}

const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0

const missing = Object.entries(DEBIAN_PACKAGES)
  .filter(([, command]) => !has(command))
  .map(([pkg]) => pkg)
if (missing.length > 0) {
  if (process.getuid?.() !== 0)
    fail(`missing Debian packages ${missing.join(', ')}: run \`sudo apt-get install ${missing.join(' ')}\` (or run the tests as root)`)
  if (!has('apt-get'))
    fail(`missing ${missing.join(', ')}, and no apt-get to install them with: install them with this system's package manager`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
  const install =
    update.status === 0 &&
    spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: ['ignore', 'ignore', 'inherit'], env })
  if (!install || install.status !== 0) fail(`apt-get install ${missing.join(' ')} failed; see above`)
}

try {
  for (const name of toolNames()) ensureTool(name)
} catch (error) {
  fail(error.message)
}
