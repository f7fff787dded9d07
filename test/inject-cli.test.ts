/**
 * The built bundle's `inject` subcommand as users run it: stdin and files, exit statuses, and as a Helm
 * post-renderer, with the real helm binary (built from its Go module by scripts/tools.mjs) rendering the
 * project's own chart (test/fixtures/helm-chart) through `helm template --post-renderer`.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { parseAllDocuments } from 'yaml'
import { toolBinary } from '../scripts/tools.mjs'
import { DEFAULT_ENV, DEFAULT_IMAGE, drainBudgetSeconds, sidecarContainer } from '../src/inject/sidecar-spec.ts'
import { type K8sObject, validateObject } from '../sim/cluster/manifests.ts'
import { BUNDLE } from '../sim/fakes/sidecar-process.ts'

const CHART = fileURLToPath(new URL('fixtures/helm-chart', import.meta.url))
// The bundle's `#!/usr/bin/env node` must find Node 24, as on a user's machine where it is installed.
const ENV = { PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`, HOME: tmpdir() }
const SIDECAR = sidecarContainer({ image: DEFAULT_IMAGE, native: true, env: DEFAULT_ENV })

function objects(text: string): K8sObject[] {
  return parseAllDocuments(text, { version: '1.1' })
    .map((doc) => doc.toJSON() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null)
}

function bundle(args: string[], input?: string) {
  const run = spawnSync(process.execPath, [BUNDLE, 'inject', ...args], { input, encoding: 'utf8', env: ENV, timeout: 30_000 })
  return { status: run.status, stdout: run.stdout, stderr: run.stderr }
}

const DEPLOYMENT = `# web, as the user wrote it
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: web:1
`

test('the bundle injects from stdin, starts no server, and a second pass changes nothing', (t) => {
  const once = bundle([], DEPLOYMENT)
  t.is(once.status, 0, once.stderr)
  t.is(once.stderr, '')
  t.true(once.stdout.startsWith('# web, as the user wrote it\n'))
  const [deployment] = objects(once.stdout)
  t.notThrows(() => validateObject(deployment!))
  t.deepEqual(deployment!.spec.template.spec.initContainers, [SIDECAR])
  t.is(drainBudgetSeconds({ timeoutMs: 20_000, appReserveMs: 10_000 }), 30)
  t.is(deployment!.spec.template.spec.terminationGracePeriodSeconds, undefined, "Kubernetes' default of 30 s covers the default budget")
  const twice = bundle([], once.stdout)
  t.is(twice.status, 0)
  t.is(twice.stdout, once.stdout)
})

test('the bundle reads files and -, and reports refusals on stderr with exit status 3', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'drain-coordinator-inject-'))
  try {
    const refused = DEPLOYMENT.replace('name: web\n', 'name: api\n').replace(
      'image: web:1',
      'image: web:1\n        - name: cache\n          image: redis:7',
    )
    writeFileSync(join(dir, 'web.yaml'), DEPLOYMENT)
    writeFileSync(join(dir, 'api.yaml'), refused)
    const run = bundle(
      ['--classic', join(dir, 'web.yaml'), '-', join(dir, 'api.yaml')],
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n',
    )
    t.is(run.status, 3)
    t.deepEqual(run.stderr.trim().split('\n'), [
      'drain-coordinator inject: refused Deployment/api: 2 candidate app containers (web, cache): name the one that serves traffic with --container NAME',
      'drain-coordinator inject: 1 refusal(s); those objects are written unchanged (exit status 3)',
    ])
    const out = objects(run.stdout)
    t.deepEqual(
      out.map((o) => `${o.kind}/${o.metadata.name}`),
      ['Deployment/web', 'ConfigMap/c', 'Deployment/api'],
    )
    t.deepEqual(
      out[0]!.spec.template.spec.containers.map((c: { name: string }) => c.name),
      ['web', 'drain-coordinator'],
      '--classic',
    )
    t.true(run.stdout.endsWith(refused), 'the refused object as it was')

    const missing = bundle([join(dir, 'nope.yaml')])
    t.is(missing.status, 2)
    t.is(missing.stdout, '')
    t.regex(missing.stderr, /^drain-coordinator inject: cannot read ".*nope\.yaml": ENOENT \(see --help\)\n$/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

function helmTemplate(args: string[]) {
  const run = spawnSync(toolBinary('helm'), ['template', 'shop', CHART, '--namespace', 'store', ...args], {
    encoding: 'utf8',
    env: ENV,
    timeout: 60_000,
  })
  return { status: run.status, stdout: run.stdout, stderr: run.stderr }
}

const POST_RENDER = ['--post-renderer', BUNDLE, '--post-renderer-args', 'inject']

test('Helm post-renderer: helm template --post-renderer gives every workload of the chart the sidecar, valid, with --rbac', (t) => {
  const plain = helmTemplate([])
  t.is(plain.status, 0, plain.stderr)
  const rendered = helmTemplate([
    ...POST_RENDER,
    '--post-renderer-args',
    '--rbac',
    '--post-renderer-args',
    '--image=ghcr.io/acme/drain-coordinator:0.1.0',
  ])
  t.is(rendered.status, 0, rendered.stderr)
  const before = objects(plain.stdout)
  const after = objects(rendered.stdout)
  for (const object of after) t.notThrows(() => validateObject(object), `${object.kind} ${object.metadata.name}`)
  t.deepEqual(
    after.map((o) => `${o.kind}/${o.metadata.name}`),
    [...before.map((o) => `${o.kind}/${o.metadata.name}`), 'Role/drain-coordinator', 'RoleBinding/drain-coordinator'],
    "the chart's objects in Helm's order, then the RBAC",
  )
  const web = after.find((o) => o.kind === 'Deployment')!
  const worker = after.find((o) => o.kind === 'StatefulSet')!
  for (const workload of [web, worker]) {
    t.deepEqual(workload.spec.template.spec.initContainers, [{ ...SIDECAR, image: 'ghcr.io/acme/drain-coordinator:0.1.0' }])
    t.deepEqual(workload.spec.template.spec.containers[0].lifecycle, { preStop: { httpGet: { path: '/prestop', port: 8099 } } })
  }
  t.is(
    web.spec.template.spec.terminationGracePeriodSeconds,
    undefined,
    "the chart sets none, and Kubernetes' default 30 s covers the default budget",
  )
  t.is(worker.spec.template.spec.terminationGracePeriodSeconds, 120, "the chart's longer one stays")
  t.deepEqual(after.at(-1)!.subjects, [
    { kind: 'ServiceAccount', name: 'shop-web' },
    { kind: 'ServiceAccount', name: 'default' },
  ])
  // Objects inject leaves alone come out exactly as Helm rendered them, its `# Source:` comments included.
  const service = plain.stdout.slice(
    plain.stdout.indexOf('---\n# Source: shop/templates/service.yaml'),
    plain.stdout.indexOf('---', plain.stdout.indexOf('service.yaml')),
  )
  t.true(service.length > 50)
  t.true(rendered.stdout.includes(service))
  t.regex(rendered.stdout, /^# Source: shop\/templates\/web\.yaml$/m)
})

test("Helm post-renderer: a refusal fails the render with inject's line, so nothing is deployed without the drain", (t) => {
  const run = helmTemplate([...POST_RENDER, '--set', 'webPreStop=true'])
  t.not(run.status, 0)
  t.is(run.stdout, '')
  t.regex(run.stderr, /error while running post render on files/)
  t.regex(run.stderr, /refused Deployment\/shop-web, container web: already has a preStop hook \(exec\)/)
  t.regex(run.stderr, /exit status 3/)
  const grace = helmTemplate([...POST_RENDER, '--set', 'terminationGracePeriodSeconds=25'])
  t.not(grace.status, 0)
  t.regex(grace.stderr, /refused Deployment\/shop-web: terminationGracePeriodSeconds 25 is shorter than the drain budget/)
  const raised = helmTemplate([...POST_RENDER, '--post-renderer-args', '--raise-grace', '--set', 'terminationGracePeriodSeconds=25'])
  t.is(raised.status, 0, raised.stderr)
  t.is(objects(raised.stdout).find((o) => o.kind === 'Deployment')!.spec.template.spec.terminationGracePeriodSeconds, 30)
})
