// Bundles src/main.ts and its dependencies into one ESM file that runs with nothing but Node 24 (the image ships
// only this file). Type checking is tsc's job (npm run typecheck); esbuild only strips types.
import { build } from 'esbuild'

await build({
  entryPoints: ['src/main.ts'],
  outfile: 'dist/drain-coordinator.mjs',
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  minify: false,
  sourcemap: false,
  // At the end of the bundle itself: the image ships only this file, so the notices must travel in it.
  legalComments: 'eof',
  // prom-client and undici are CommonJS and call require() for Node built-ins.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
})
