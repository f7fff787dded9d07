#!/usr/bin/env zx
// npm run demo: simulates one pod's termination on this machine (see sim/) and prints its timeline.
import { existsSync } from 'node:fs'
import { $, cd } from 'zx'

cd(new URL('..', import.meta.url).pathname)
if (!existsSync('dist/drain-coordinator.mjs')) {
  console.log('dist/drain-coordinator.mjs is missing: building it first (npm run build)')
  await $({ stdio: 'inherit' })`npm run build`
}
const { runDemo } = await import('../sim/demo.ts')
process.exitCode = await runDemo()
