/**
 * The repository stands on its own: nothing points at files outside it, and the Markdown links between README
 * and docs/ lead to files that exist.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean)
const text = (file: string) => readFileSync(join(ROOT, file), 'utf8')
const textFiles = tracked.filter(
  (file) => /\.(ts|mts|mjs|js|json|md|yaml|yml|sh)$|Dockerfile$|^\.ci\//.test(file) && existsSync(join(ROOT, file)),
)

test('no tracked file points at notes outside the repository', (t) => {
  // Built from pieces so that this file does not match itself.
  const outside = new RegExp(['\\.\\./shared/', '/wo' + 'rk/', 'protocol' + '-notes', 'field' + '[ -]notes'].join('|'), 'i')
  const offenders = textFiles.filter((file) => file !== 'package-lock.json' && outside.test(text(file)))
  t.deepEqual(offenders, [])
})

test('every relative link in README.md and docs/ leads to a file in the repository', (t) => {
  const pages = tracked.filter((file) => file === 'README.md' || (file.startsWith('docs/') && file.endsWith('.md')))
  t.true(pages.length >= 4, pages.join(', '))
  const broken: string[] = []
  for (const page of pages) {
    for (const [, target] of text(page).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue
      if (!existsSync(join(ROOT, dirname(page), target!))) broken.push(`${page} → ${target}`)
    }
  }
  t.deepEqual(broken, [])
})
