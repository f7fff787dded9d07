/**
 * The project's boundaries as lint rules (eslint.config.mjs): each snippet is linted as if it were a file of
 * src/, and must be flagged with the boundary's message in an ordinary module, and pass in the module that owns
 * that edge. A rule that stopped firing, or fired at its own edge, fails here.
 */
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { ESLint } from 'eslint'

const eslint = new ESLint({ cwd: fileURLToPath(new URL('..', import.meta.url)) })

async function messages(code: string, filePath: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath })
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`)
}

const TIME = /Timers and clocks live in src\/clock\.ts/
const NETWORK = /Only src\/transport\.ts imports undici/
const ENV = /Only src\/config\.ts and src\/main\.ts read process\.env/

const cases: Array<{ name: string; code: string; message: RegExp; allowedIn: string[] }> = [
  { name: 'setTimeout', code: 'setTimeout(() => {}, 10)\n', message: TIME, allowedIn: ['src/clock.ts', 'src/main.ts'] },
  { name: 'setInterval', code: 'clearInterval(setInterval(() => {}, 10))\n', message: TIME, allowedIn: ['src/main.ts'] },
  { name: 'setImmediate', code: 'setImmediate(() => {})\n', message: TIME, allowedIn: ['src/transport.ts'] },
  { name: 'globalThis.setTimeout', code: 'globalThis.setTimeout(() => {}, 10)\n', message: TIME, allowedIn: ['src/clock.ts'] },
  {
    name: 'timers/promises',
    code: "import { setTimeout as sleep } from 'node:timers/promises'\nawait sleep(1)\n",
    message: TIME,
    allowedIn: ['src/clock.ts'],
  },
  { name: 'AbortSignal.timeout', code: 'export const s = AbortSignal.timeout(1_000)\n', message: TIME, allowedIn: ['src/main.ts'] },
  { name: 'Date.now', code: 'export const t = Date.now()\n', message: TIME, allowedIn: ['src/clock.ts'] },
  { name: 'new Date()', code: 'export const t = new Date()\n', message: /new Date\(\) reads the wall clock/, allowedIn: ['src/clock.ts'] },
  { name: 'performance.now', code: 'export const t = performance.now()\n', message: TIME, allowedIn: ['src/clock.ts'] },
  {
    name: 'import undici',
    code: "import { fetch } from 'undici'\nexport { fetch }\n",
    message: NETWORK,
    allowedIn: ['src/transport.ts', 'src/undici-lazy.ts'],
  },
  {
    name: 'import undici/*',
    code: "import { Agent } from 'undici/types/agent'\nexport type { Agent }\n",
    message: NETWORK,
    allowedIn: ['src/transport.ts'],
  },
  {
    name: 'dynamic import of undici',
    code: "export const u = await import('undici')\n",
    message: NETWORK,
    allowedIn: ['src/transport.ts'],
  },
  { name: 'process.env', code: 'export const port = process.env.DRAIN_PORT\n', message: ENV, allowedIn: ['src/config.ts', 'src/main.ts'] },
  {
    name: 'destructured process.env',
    code: 'const { env } = process\nexport const port = env.DRAIN_PORT\n',
    message: ENV,
    allowedIn: ['src/config.ts'],
  },
]

for (const { name, code, message, allowedIn } of cases) {
  test(`${name} is flagged in an ordinary module of src/ and allowed in ${allowedIn.join(', ')}`, async (t) => {
    for (const file of ['src/drain.ts', 'src/kube/endpoint-wait.ts']) {
      const found = await messages(code, file)
      t.true(
        found.some((m) => message.test(m)),
        `${file}: ${JSON.stringify(found)}`,
      )
    }
    for (const file of allowedIn) {
      const found = await messages(code, file)
      t.false(
        found.some((m) => message.test(m)),
        `${file}: ${JSON.stringify(found)}`,
      )
    }
  })
}

test('a date from a value, Date.parse and a Clock are not the wall clock', async (t) => {
  const code =
    "import type { Clock } from './clock.ts'\nexport const f = (clock: Clock, s: string) => [new Date(s), Date.parse(s), clock.now(), clock.wallTime()]\n"
  t.deepEqual(await messages(code, 'src/drain.ts'), [])
})

test('the boundaries bind src/ only: tests and the simulator may use timers, the clock and process.env', async (t) => {
  const code = 'export const a = [setTimeout, Date.now(), new Date(), performance.now(), process.env.X]\n'
  t.deepEqual(await messages(code, 'test/example.test.ts'), [])
  t.deepEqual(await messages(code, 'sim/example.ts'), [])
})

test('the whole repository lints clean', async (t) => {
  const results = await eslint.lintFiles(['.'])
  const problems = results.flatMap((r) => r.messages.map((m) => `${r.filePath}:${m.line} ${m.ruleId}: ${m.message}`))
  t.deepEqual(problems, [])
})
