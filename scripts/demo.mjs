#!/usr/bin/env zx
// npm run demo: simulates one pod's termination on this machine (see sim/) and prints its timeline.
import { $, cd } from 'zx'

cd(new URL('..', import.meta.url).pathname)
// The demo shows the current source: bundle it (esbuild only, about a second; `npm run build` also type-checks).
await $({ stdio: 'inherit' })`node scripts/bundle.mjs`
const { runDemo } = await import('../sim/demo.ts')
process.exitCode = await runDemo()
