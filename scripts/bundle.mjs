// Bundles src/main.ts and its dependencies into one ESM file that runs with nothing but Node 24 (the image ships
// only this file). Type checking is tsc's job (npm run typecheck); esbuild only strips types.
import { readFileSync } from 'node:fs'
import { build } from 'esbuild'

// An older Node fails deep inside undici (`Cannot read properties of undefined (reading 'bind')`): before any
// bundled code runs, say in one line which Node this needs, and exit 2 like every other start-up error. Static
// imports link before this runs, so a named import of a node: API the old Node lacks would fail first:
// import such modules whole (src/main.ts does for node:module); test/node-version.test.ts catches a slip.
const engines = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).engines.node
const minNode = Number(/^>=(\d+)$/.exec(engines)?.[1] ?? NaN)
if (!Number.isInteger(minNode)) throw new Error(`package.json engines.node is ${JSON.stringify(engines)}: expected >=MAJOR`)
const nodeCheck =
  `if (Number(process.versions.node.split('.')[0]) < ${minNode}) {` +
  ` process.stderr.write('drain-coordinator: needs Node.js ${minNode} or newer; this is Node.js ' + process.versions.node + '\\n'); process.exit(2) }`

// Run by hand (without --disable-sigusr1), SIGUSR1 would open Node's inspector until the sidecar installs its own
// listener (src/signals.ts, which logs it); a listener is what stops Node's trigger, so one goes in as the bundle's
// first statement, closing the window to the time it takes to load the file.
const earlySigusr1 = `process.on('SIGUSR1', () => {})`

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
  banner: {
    js: [
      "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
      nodeCheck,
      earlySigusr1,
    ].join('\n'),
  },
  logLevel: 'warning',
})
