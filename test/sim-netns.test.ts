/**
 * sim/netns.ts: pods as network namespaces. As root, a namespace left by a run that crashed (its process gone, an
 * orphan still running inside) is swept by the next run: the orphan killed, the namespace, its veth, the bridge and
 * the subnet lock removed. Not root: the network falls back to loopback.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import test from 'ava'
import { createNetwork, isRoot, simNamespaces, sweepLeftovers } from '../sim/netns.ts'

const linkExists = (name: string) => spawnSync('ip', ['link', 'show', name], { stdio: 'ignore' }).status === 0

test("a crashed run's namespace, orphan process, veth, bridge and lock are swept; a new network is made and removed", async (t) => {
  if (!isRoot()) {
    const network = await createNetwork({ loopbackPrefix: '127.0.9' })
    t.is(network.mode, 'loopback')
    t.is(network.prefix, '127.0.9')
    return
  }
  // The crashed run: a process that owns the leftovers while they are made (so no other run's sweep takes them
  // early), then dies.
  const owner = spawn('sleep', ['60'], { stdio: 'ignore' })
  const ownerExit = new Promise((resolve) => owner.on('exit', resolve))
  const dead = owner.pid!
  const k = 250
  const ns = `dc-${dead}-${k}-10`
  mkdirSync('/run/drain-coordinator-sim', { recursive: true })
  writeFileSync(`/run/drain-coordinator-sim/subnet-${k}`, `${dead} 0\n`)
  t.is(spawnSync('ip', ['link', 'add', `dc-br${k}`, 'type', 'bridge']).status, 0)
  t.is(spawnSync('ip', ['netns', 'add', ns]).status, 0)
  t.is(spawnSync('ip', ['link', 'add', `dc${k}v10`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]).status, 0)
  const orphan = spawn('ip', ['netns', 'exec', ns, 'sleep', '60'], { stdio: 'ignore', detached: true })
  const orphanExit = new Promise((resolve) => orphan.on('exit', (_code, signal) => resolve(signal)))
  t.teardown(() => orphan.kill('SIGKILL'))
  const until = Date.now() + 5_000
  while (!spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.includes(String(orphan.pid)) && Date.now() < until)
    await new Promise((resolve) => setTimeout(resolve, 20))
  owner.kill('SIGKILL')
  await ownerExit

  // (Other test files' runs sweep too, so these may be gone before this test's own sweep: the outcome is the same.)
  sweepLeftovers()
  t.false(simNamespaces().includes(ns))
  t.false(linkExists(`dc${k}v10`))
  t.false(linkExists(`dc-br${k}`))
  t.false(existsSync(`/run/drain-coordinator-sim/subnet-${k}`))
  t.is(await Promise.race([orphanExit, new Promise((resolve) => setTimeout(resolve, 5_000, 'still running'))]), 'SIGKILL')

  const network = await createNetwork({ loopbackPrefix: '127.0.9' })
  t.is(network.mode, 'netns')
  t.regex(network.prefix, /^198\.18\.\d+$/)
  const pod = await network.addPod(10)
  t.true(simNamespaces().includes(pod!))
  // The node routes to the pod's address across the run's bridge, and the pod to the node.
  t.regex(
    spawnSync('ip', ['route', 'get', `${network.prefix}.10`], { encoding: 'utf8' }).stdout,
    new RegExp(`dev dc-br${network.prefix.split('.')[2]} `),
  )
  t.regex(spawnSync('ip', ['-n', pod!, 'route', 'get', network.nodeIp!], { encoding: 'utf8' }).stdout, / dev eth0 /)
  await network.close()
  t.false(simNamespaces().includes(pod!))
  t.false(linkExists(`dc-br${network.prefix.split('.')[2]}`))
})
