/**
 * V8 flags the sidecar turns on once its port is open, not on Node's command line.
 *
 * They keep memory flat under load (README, "Footprint"): no optimizing JavaScript compilers (Sparkplug, the
 * baseline compiler, stays), whose code and compile-time memory were most of the RSS growth after 1000 scrapes of
 * /metrics, and no optimizing re-compile of undici's WebAssembly HTTP parser (a one-off spike of about 20 MB for a
 * parser that handles a few requests per drain).
 *
 * Why after start-up: any of them on the command line changes V8's flag hash, and Node then cannot use the code
 * cache it ships for its own modules, so every built-in module the sidecar loads (http, net, stream, crypto, ...)
 * is compiled from source: about 35 ms more before the port opens, on a bare server as much as on the sidecar.
 * Set after start-up, they rule every compile decision from then on. Only flags that V8 reads at each decision work
 * this way: `--liftoff-only` does not (V8 derives the WebAssembly tiering flags from it only when it starts, and set
 * later it even made the parser compile with TurboFan at once), so the two tiering flags it implies are named
 * instead. test/v8-flags.test.ts checks, in a fresh Node and inside the running sidecar, that a hot function is
 * never optimized and a hot WebAssembly function stays on Liftoff once these are set.
 */
export const V8_FLAGS_AFTER_START = ['--no-opt', '--no-maglev', '--no-wasm-tier-up', '--no-wasm-dynamic-tiering'] as const

/** Sets each flag with `setFlagsFromString` (node:v8's, handed in by main.ts). */
export function applyV8FlagsAfterStart(setFlagsFromString: (flag: string) => void): void {
  for (const flag of V8_FLAGS_AFTER_START) setFlagsFromString(flag)
}
