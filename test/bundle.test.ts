/**
 * What start-up reads (README, "Footprint"): the entry file, main.mjs and the chunks they import statically. undici,
 * the `inject` subcommand's YAML library and prom-client's process-metrics collector (with OpenTelemetry's API) are
 * chunks of their own, imported on first use; prom-client's Pushgateway and cluster aggregator are not bundled.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import test from 'ava'
import { BUNDLE } from '../sim/fakes/sidecar-process.ts'

const DIST = dirname(BUNDLE)
const read = (file: string) => readFileSync(join(DIST, file), 'utf8')

/**
 * The files a module imports statically (`import ... from "./x.mjs"`, `export ... from`, a bare `import "./x.mjs"`);
 * a dynamic `import("./x.mjs")` is not one.
 */
function staticImports(file: string): string[] {
  const text = read(file)
  return [
    ...[...text.matchAll(/^(?:import|export)\s[^;]*?\sfrom\s+["']\.\/([^"']+)["']/gms)].map((m) => m[1]!),
    ...[...text.matchAll(/^import\s+["']\.\/([^"']+)["']/gm)].map((m) => m[1]!),
  ]
}

/** The modules start-up loads: the entry, what it imports dynamically right away (main.mjs), and their static closure. */
function startUpFiles(): string[] {
  const seen = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    for (const next of staticImports(file)) visit(next)
  }
  visit('drain-coordinator.mjs')
  visit('main.mjs')
  return [...seen]
}

/** The bundled packages and source files a module holds (esbuild marks each with a `// path` line). */
const sources = (file: string) => [...read(file).matchAll(/^\/\/ ((?:node_modules|src)\/\S+)$/gm)].map((m) => m[1]!)

test('the entry checks the Node version and imports main.mjs, nothing else', (t) => {
  const entry = read('drain-coordinator.mjs')
  t.deepEqual(staticImports('drain-coordinator.mjs'), [])
  t.deepEqual(
    [...entry.matchAll(/import\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]),
    ['./main.mjs'],
  )
  t.true(entry.indexOf('process.versions.node') < entry.indexOf("import('./main.mjs')"), 'the check comes first')
})

test('start-up loads neither undici, nor YAML, nor the process-metrics collector, nor the Pushgateway', (t) => {
  const loaded = startUpFiles().flatMap(sources)
  t.true(
    loaded.some((path) => path.startsWith('src/main.ts')),
    `main is among them: ${startUpFiles().join(' ')}`,
  )
  for (const lazy of [
    'node_modules/undici/',
    'node_modules/yaml/',
    'node_modules/@opentelemetry/',
    'node_modules/prom-client/lib/defaultMetrics.js',
    'src/inject/',
  ])
    t.false(
      loaded.some((path) => path.startsWith(lazy)),
      `${lazy} is loaded at start-up`,
    )
})

test('undici, YAML and the process-metrics collector are in dist/, in chunks of their own; the Pushgateway is nowhere', (t) => {
  const all = readdirSync(DIST).filter((file) => file.endsWith('.mjs'))
  const lazy = all.filter((file) => !startUpFiles().includes(file))
  for (const path of ['node_modules/undici/', 'node_modules/yaml/', 'node_modules/prom-client/lib/defaultMetrics.js'])
    t.true(
      lazy.some((file) => sources(file).some((source) => source.startsWith(path))),
      `${path} in a lazy chunk`,
    )
  for (const path of ['node_modules/prom-client/lib/pushgateway.js', 'node_modules/prom-client/lib/cluster.js'])
    t.false(
      all.some((file) => sources(file).includes(path)),
      `${path} bundled`,
    )
})
