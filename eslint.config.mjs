// ESLint (flat config): the recommended JavaScript and typescript-eslint rules everywhere, and the project's
// boundaries as rules for src/ (see README, "Lint and format"). Formatting is Prettier's job (.prettierrc.json);
// no rule here is about layout. `npm run lint` runs both; test/lint.test.ts proves each boundary rule fires.
import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

/**
 * Only these may use timers, the clock and undici: everything else is handed a Clock and a Fetch. undici-lazy.ts is
 * transport.ts's other half, the undici it loads on the first request (a module of its own for the bundle's sake).
 */
const TIME_AND_NETWORK_EDGES = ['src/clock.ts', 'src/transport.ts', 'src/undici-lazy.ts', 'src/main.ts']
/** Only these may read process.env: config.ts parses it, main.ts hands it over. */
const ENV_EDGES = ['src/config.ts', 'src/main.ts']

const TIME = 'Timers and clocks live in src/clock.ts: take a Clock (sleep, deadline, now, wallTime) so tests can drive time.'
const NETWORK = 'Only src/transport.ts imports undici: take a Fetch from createFetch().'
const ENV = 'Only src/config.ts and src/main.ts read process.env: take the value from the Config.'

/** The boundary rules for a file that may use neither (`time`), nor (`env`), or one of the two. */
function boundaries({ time, env }) {
  const properties = []
  const syntax = []
  if (time) {
    for (const [object, property] of [
      ['Date', 'now'],
      ['performance', 'now'],
      ['process', 'hrtime'],
      ['AbortSignal', 'timeout'],
    ]) {
      properties.push({ object, property, message: TIME })
    }
    for (const property of ['setTimeout', 'setInterval', 'setImmediate']) properties.push({ object: 'globalThis', property, message: TIME })
    syntax.push(
      { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: `new Date() reads the wall clock. ${TIME}` },
      { selector: "CallExpression[callee.name='Date']", message: `Date() reads the wall clock. ${TIME}` },
      { selector: 'ImportExpression[source.value=/^undici(\\u002F|$)/]', message: NETWORK },
    )
  }
  if (env) {
    properties.push({ object: 'process', property: 'env', message: ENV })
    syntax.push({ selector: "MemberExpression[object.name='globalThis'][property.name='process']", message: `globalThis.process: ${ENV}` })
  }
  return {
    'no-restricted-globals': [
      'error',
      ...(time ? ['setTimeout', 'setInterval', 'setImmediate'].map((name) => ({ name, message: TIME })) : []),
    ],
    'no-restricted-properties': ['error', ...properties],
    'no-restricted-syntax': ['error', ...syntax],
    'no-restricted-imports': [
      'error',
      {
        paths: time
          ? [
              { name: 'undici', message: NETWORK },
              ...['timers', 'timers/promises', 'node:timers', 'node:timers/promises'].map((name) => ({ name, message: TIME })),
            ]
          : [],
        patterns: time ? [{ group: ['undici/*'], message: NETWORK }] : [],
      },
    ],
  }
}

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'bench-results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      // `_name` marks a binding kept on purpose (a destructured rest, an unused callback parameter).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      // A variable a closure reads before its one assignment (main.ts's server, used by the signal handlers
      // installed before listen) cannot be const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // Tests read arbitrary JSON (manifests, API bodies) and turn failures into assertion messages of their own;
    // so do the fakes and the cluster fixture they share with sim/ and scripts/.
    files: ['test/**/*.ts', 'sim/fakes/**/*.ts', 'sim/cluster/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', 'preserve-caught-error': 'off' },
  },
  { files: ['src/**/*.ts'], ignores: [...TIME_AND_NETWORK_EDGES, ...ENV_EDGES], rules: boundaries({ time: true, env: true }) },
  { files: ['src/config.ts'], rules: boundaries({ time: true, env: false }) },
  { files: ['src/clock.ts', 'src/transport.ts', 'src/undici-lazy.ts'], rules: boundaries({ time: false, env: true }) },
)
