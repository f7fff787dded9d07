/**
 * The bundle started by a Node older than it needs: one line naming the Node it needs, exit 2 (like any start-up
 * error), instead of a TypeError from deep inside undici. Debian's own nodejs package (scripts/test-prereqs.mjs)
 * is the old Node.
 */
import { spawnSync } from 'node:child_process'
import test from 'ava'
import { BUNDLE } from '../sim/fakes/sidecar-process.ts'

const OLD_NODE = '/usr/bin/node'

test('an older Node gets one line saying the bundle needs Node.js 24, and exit code 2', (t) => {
  const version = spawnSync(OLD_NODE, ['--version'], { encoding: 'utf8' }).stdout.trim()
  t.true(Number(/^v(\d+)\./.exec(version)?.[1]) < 24, `${OLD_NODE} is ${version}: this test needs a Node older than 24 there`)
  const run = spawnSync(OLD_NODE, [BUNDLE], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', DRAIN_PORT: '0' }, timeout: 20_000 })
  t.is(run.status, 2, run.stderr)
  t.is(run.stderr, `drain-coordinator: needs Node.js 24 or newer; this is Node.js ${version.slice(1)}\n`)
  t.is(run.stdout, '')
})
