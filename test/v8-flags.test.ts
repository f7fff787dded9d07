/**
 * The V8 flags the sidecar sets once it listens (src/v8-flags.ts) take effect when set at run time: in a fresh
 * Node, after applyV8FlagsAfterStart, a hot JavaScript function is never optimized and a hot WebAssembly function
 * stays on Liftoff; the same probe without them sees both optimized, and with `--liftoff-only` instead sees the
 * WebAssembly optimized (why v8-flags.ts names the tiering flags). The built sidecar applies them: probed inside
 * its own process, after it listens.
 */
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { NODE_FLAGS, startSidecar } from '../sim/fakes/sidecar-process.ts'

const V8_FLAGS = new URL('../src/v8-flags.ts', import.meta.url).href

/** Heats one JS and one wasm function, then reports their tiers (needs natives syntax, set first). */
const HEAT_AND_REPORT = `
const natives = (name) => vm.runInThisContext('(f) => %' + name + '(f)')
function hot(x) { let s = 0; for (let i = 0; i < 100; i++) s += (x * i) % 7; return s }
for (let i = 0; i < 300000; i++) hot(i)
// (module (func (export "f") (param i32) (result i32) local.get 0 i32.const 1 i32.add))
const wasm = new Uint8Array([0,97,115,109,1,0,0,0,1,6,1,96,1,127,1,127,3,2,1,0,7,5,1,1,102,0,0,10,9,1,7,0,32,0,65,1,106,11])
const { instance } = await WebAssembly.instantiate(wasm)
for (let i = 0; i < 2000000; i++) instance.exports.f(i)
// Bit 4 of the status: optimized, by Maglev or TurboFan.
const tiers = () => ({
  jsOptimized: (natives('GetOptimizationStatus')(hot) & (1 << 4)) !== 0,
  wasmLiftoff: natives('IsLiftoffFunction')(instance.exports.f),
  wasmTurbofan: natives('IsTurboFanFunction')(instance.exports.f),
})
// Tier-up compiles in the background: keep both hot and look again until both are optimized, or 2 s have passed
// (what a probe that must see nothing optimized waits in full).
for (const until = Date.now() + 2_000; Date.now() < until; ) {
  const now = tiers()
  if (now.jsOptimized && now.wasmTurbofan) break
  for (let i = 0; i < 10000; i++) hot(i), instance.exports.f(i)
  await new Promise((resolve) => setTimeout(resolve, 20))
}
const report = JSON.stringify(tiers())
`

type Tiers = { jsOptimized: boolean; wasmLiftoff: boolean; wasmTurbofan: boolean }

/** Runs in a child Node (flags are process-wide): `apply` sets the sidecar's flags, `liftoff-only` that one flag. */
function probe(mode: 'apply' | 'none' | 'liftoff-only'): Tiers {
  const script = `
import v8 from 'node:v8'
import vm from 'node:vm'
const { applyV8FlagsAfterStart } = await import(${JSON.stringify(V8_FLAGS)})
if (${JSON.stringify(mode)} === 'apply') applyV8FlagsAfterStart(v8.setFlagsFromString)
if (${JSON.stringify(mode)} === 'liftoff-only') v8.setFlagsFromString('--liftoff-only')
v8.setFlagsFromString('--allow-natives-syntax')
${HEAT_AND_REPORT}
process.stdout.write(report)
`
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 })
  if (run.status !== 0) throw new Error(`probe failed (${run.status}): ${run.stderr}`)
  return JSON.parse(run.stdout) as Tiers
}

test('set after start-up, the flags keep hot JavaScript unoptimized and hot WebAssembly on Liftoff', (t) => {
  t.deepEqual(probe('apply'), { jsOptimized: false, wasmLiftoff: true, wasmTurbofan: false })
})

test('without them, the same probe sees both optimized (so the probe can tell)', (t) => {
  t.like(probe('none'), { jsOptimized: true, wasmTurbofan: true })
})

test('--liftoff-only set at run time does not keep WebAssembly on Liftoff (why the tiering flags are named instead)', (t) => {
  t.like(probe('liftoff-only'), { wasmLiftoff: false, wasmTurbofan: true })
})

test('black box: the running sidecar has them in force once it listens', async (t) => {
  // Loaded into the sidecar's own process: on SIGUSR2 (logged and ignored by the sidecar) it probes and writes
  // what it saw to a file.
  const dir = await mkdtemp(join(tmpdir(), 'dc-v8-flags-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const out = join(dir, 'tiers.json')
  const preload = join(dir, 'probe.mjs')
  await writeFile(
    preload,
    `import vm from 'node:vm'
import { writeFileSync } from 'node:fs'
process.on('SIGUSR2', async () => {
${HEAT_AND_REPORT}
  writeFileSync(${JSON.stringify(out)}, report)
})
`,
  )
  const sidecar = await startSidecar(
    { DRAIN_SETTLE: '200ms' },
    { nodeArgs: [...NODE_FLAGS, '--allow-natives-syntax', `--import=${preload}`] },
  )
  t.teardown(() => sidecar.stop())
  sidecar.child.kill('SIGUSR2')
  let tiers: Tiers | undefined
  for (let i = 0; i < 200 && tiers === undefined; i++) {
    tiers = await readFile(out, 'utf8').then(
      (text) => JSON.parse(text) as Tiers,
      () => undefined,
    )
    if (tiers === undefined) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.deepEqual(tiers, { jsOptimized: false, wasmLiftoff: true, wasmTurbofan: false })
})
