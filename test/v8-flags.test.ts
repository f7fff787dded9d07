/**
 * The V8 flags the sidecar sets once it listens (src/v8-flags.ts) take effect when set at run time: in a fresh
 * Node, after applyV8FlagsAfterStart, a hot JavaScript function is never optimized and a hot WebAssembly function
 * stays on Liftoff. The same probe without the flags shows both being optimized, so the probe can tell.
 */
import { spawnSync } from 'node:child_process'
import test from 'ava'

const V8_FLAGS = new URL('../src/v8-flags.ts', import.meta.url).href

/** Runs in a child Node (flags are process-wide): heats one JS and one wasm function, then reports their tiers. */
const PROBE = `
import v8 from 'node:v8'
import vm from 'node:vm'
const { applyV8FlagsAfterStart } = await import(${JSON.stringify(V8_FLAGS)})
if (process.argv.includes('apply')) applyV8FlagsAfterStart(v8.setFlagsFromString)
v8.setFlagsFromString('--allow-natives-syntax')
const natives = (name) => vm.runInThisContext('(f) => %' + name + '(f)')
function hot(x) { let s = 0; for (let i = 0; i < 100; i++) s += (x * i) % 7; return s }
for (let i = 0; i < 300000; i++) hot(i)
// (module (func (export "f") (param i32) (result i32) local.get 0 i32.const 1 i32.add))
const wasm = new Uint8Array([0,97,115,109,1,0,0,0,1,6,1,96,1,127,1,127,3,2,1,0,7,5,1,1,102,0,0,10,9,1,7,0,32,0,65,1,106,11])
const { instance } = await WebAssembly.instantiate(wasm)
for (let i = 0; i < 2000000; i++) instance.exports.f(i)
// Tier-up compiles in the background: give it time to land.
await new Promise((resolve) => setTimeout(resolve, 300))
const status = natives('GetOptimizationStatus')(hot)
process.stdout.write(JSON.stringify({
  jsOptimized: (status & (1 << 4)) !== 0 || (status & (1 << 17)) !== 0,
  wasmLiftoff: natives('IsLiftoffFunction')(instance.exports.f),
  wasmTurbofan: natives('IsTurboFanFunction')(instance.exports.f),
}))
`

function probe(...args: string[]): { jsOptimized: boolean; wasmLiftoff: boolean; wasmTurbofan: boolean } {
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', PROBE, '--', ...args], { encoding: 'utf8', timeout: 30_000 })
  if (run.status !== 0) throw new Error(`probe failed (${run.status}): ${run.stderr}`)
  return JSON.parse(run.stdout) as { jsOptimized: boolean; wasmLiftoff: boolean; wasmTurbofan: boolean }
}

test('set after start-up, the flags keep hot JavaScript unoptimized and hot WebAssembly on Liftoff', (t) => {
  t.deepEqual(probe('apply'), { jsOptimized: false, wasmLiftoff: true, wasmTurbofan: false })
})

test('without them, the same probe sees both optimized (so the probe can tell)', (t) => {
  t.like(probe(), { jsOptimized: true, wasmTurbofan: true })
})
