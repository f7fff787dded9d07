/**
 * The release workflow (.github/workflows/release.yml) cannot run here: no GitHub Actions. actionlint (built from
 * its Go module, test/tools/actionlint) checks its syntax, expressions, the inputs of the actions it uses and, with
 * shellcheck, its shell steps; the rest checks that it builds and tags what the image/ scripts do.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { PLATFORMS } from '../image/plan.mjs'
import { toolBinary } from '../scripts/tools.mjs'

const WORKFLOW = fileURLToPath(new URL('../.github/workflows/release.yml', import.meta.url))
const text = readFileSync(WORKFLOW, 'utf8')

function actionlint(input: string) {
  const run = spawnSync(toolBinary('actionlint'), ['-no-color', '-oneline', '-stdin-filename', 'release.yml', '-'], {
    input,
    encoding: 'utf8',
  })
  return { status: run.status, output: `${run.stdout}${run.stderr}` }
}

test('actionlint finds nothing wrong with the release workflow', (t) => {
  const result = actionlint(text)
  t.is(result.output, '')
  t.is(result.status, 0)
})

test('actionlint does check it: a misspelt action input and a bad step reference are reported', (t) => {
  t.true(text.includes('platforms: '))
  const broken = text.replace('platforms: ', 'platform: ').replace('steps.build.outputs.digest', 'steps.biuld.outputs.digest')
  const result = actionlint(broken)
  t.is(result.status, 1)
  t.regex(result.output, /input "platform" is not defined in action "docker\/build-push-action/)
  t.regex(result.output, /property "biuld" is not defined/)
})

test('it releases on version tags, for the platforms and under the tags the image/ scripts use, with SBOM and provenance', (t) => {
  t.regex(text, /on:\n {2}push:\n {4}tags: \['v\*\.\*\.\*'\]/)
  t.true(text.includes(`platforms: ${PLATFORMS.join(',')}\n`))
  // image/plan.mjs tags <version> and sha-<first 12 hex of the commit>.
  t.true(text.includes('echo "${image}:${version}"'))
  t.true(text.includes('echo "${image}:sha-${SHA::12}"'))
  t.true(text.includes('if [ "v${version}" != "${TAG}" ]'), 'the tag must match package.json')
  t.regex(text, /sbom: true\n/)
  t.regex(text, /provenance: mode=max\n/)
  t.regex(text, /uses: actions\/attest-build-provenance@/)
  t.regex(text, /^permissions: \{\}$/m)
})
