/**
 * `drain-coordinator inject` as a transformation (src/inject/): every workload kind, Lists and several documents,
 * comments and untouched documents kept, idempotence, each refusal with its line and exit status, --classic,
 * --rbac, and every object it writes valid against the Kubernetes schema.
 */
import test from 'ava'
import { parseAllDocuments, stringify } from 'yaml'
import { EXIT, type InjectIo, runInject } from '../src/inject/cli.ts'
import { inject, type InjectOptions } from '../src/inject/inject.ts'
import { DEFAULT_ENV, DEFAULT_IMAGE, drainBudgetSeconds, sidecarContainer } from '../src/inject/sidecar-spec.ts'
import { WORKLOADS } from '../src/inject/workload.ts'
import { type Container, type K8sObject, validateObject } from '../sim/cluster/manifests.ts'

const OPTIONS: InjectOptions = {
  image: DEFAULT_IMAGE,
  native: true,
  env: DEFAULT_ENV,
  containers: [],
  raiseGrace: false,
  skip: [],
  rbac: false,
}
const BUDGET = drainBudgetSeconds({ timeoutMs: 20_000, appReserveMs: 10_000 })

function run(text: string, options: Partial<InjectOptions> = {}) {
  return inject([{ name: 'in.yaml', text }], { ...OPTIONS, ...options })
}

function objects(text: string): K8sObject[] {
  return parseAllDocuments(text, { version: '1.1' })
    .map((doc) => doc.toJSON() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null)
}

/** The CLI with its process edges replaced: stdin and files from memory, stdout and stderr captured. */
async function cli(args: string[], stdin = '', files: Record<string, string> = {}) {
  let stdout = ''
  let stderr = ''
  const io: InjectIo = {
    readStdin: async () => stdin,
    readFile: async (path) => {
      if (!(path in files)) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT', path })
      return files[path]!
    },
    write: (text) => (stdout += text),
    warn: (line) => (stderr += line),
  }
  const status = await runInject(args, io)
  return { status, stdout, stderr, lines: stderr.split('\n').filter(Boolean) }
}

const APP = { name: 'web', image: 'web:1', ports: [{ containerPort: 8080 }] }

/** A minimal valid object of each workload kind, as YAML text. */
function workload(kind: keyof typeof WORKLOADS, name = 'web', containers: object[] = [APP]): string {
  const podSpec = { serviceAccountName: 'web', containers }
  const template = (extra: object = {}) => ({ metadata: { labels: { app: name } }, spec: { ...podSpec, ...extra } })
  const head = { apiVersion: WORKLOADS[kind]!.apiVersion, kind, metadata: { name } }
  const spec =
    kind === 'Pod'
      ? podSpec
      : kind === 'Job'
        ? { template: template({ restartPolicy: 'Never' }) }
        : kind === 'CronJob'
          ? { schedule: '*/5 * * * *', jobTemplate: { spec: { template: template({ restartPolicy: 'OnFailure' }) } } }
          : { selector: { matchLabels: { app: name } }, template: template() }
  return stringify({ ...head, spec }, { version: '1.1' })
}

function podSpecOf(object: K8sObject): Container {
  return WORKLOADS[object.kind]!.podSpec.reduce((at: Container, key) => at[key], object)
}

const expectedSidecar = (native = true) => sidecarContainer({ image: DEFAULT_IMAGE, native, env: DEFAULT_ENV })

for (const kind of Object.keys(WORKLOADS)) {
  test(`${kind}: the native sidecar, the app's preStop hook and a grace period covering the budget, valid against the schema`, (t) => {
    const input = workload(kind)
    t.notThrows(() => validateObject(objects(input)[0]!), 'the fixture itself is valid')
    const result = run(input)
    t.deepEqual(result.refusals, [])
    t.is(result.injected, 1)
    const [object] = objects(result.output)
    t.notThrows(() => validateObject(object!))
    const spec = podSpecOf(object!)
    t.deepEqual(spec.initContainers, [expectedSidecar()])
    t.deepEqual(spec.containers, [
      {
        name: 'web',
        image: 'web:1',
        ports: [{ containerPort: 8080 }],
        lifecycle: { preStop: { httpGet: { path: '/prestop', port: 8099 } } },
      },
    ])
    t.is(BUDGET, 30)
    t.is(spec.terminationGracePeriodSeconds, undefined, "Kubernetes' default of 30 s covers the default budget: nothing added")
    t.is(spec.serviceAccountName, 'web', 'the pod keeps its ServiceAccount')
  })
}

test('the drain budget is DRAIN_TIMEOUT and DRAIN_APP_RESERVE, rounded up to whole seconds', (t) => {
  t.is(drainBudgetSeconds({ timeoutMs: 20_000, appReserveMs: 10_000 }), 30)
  t.is(drainBudgetSeconds({ timeoutMs: 20_500, appReserveMs: 0 }), 21)
  const longer = run(workload('Deployment'), { env: { ...DEFAULT_ENV, DRAIN_TIMEOUT: '40s' } })
  t.is(podSpecOf(objects(longer.output)[0]!).terminationGracePeriodSeconds, 50)
  // A budget the Kubernetes default (30 s) already covers adds nothing.
  const short = run(workload('Deployment'), { env: { DRAIN_TIMEOUT: '10s', DRAIN_SETTLE: '1s', DRAIN_FINAL_SCRAPE_WAIT: '0s' } })
  t.is(podSpecOf(objects(short.output)[0]!).terminationGracePeriodSeconds, undefined)
  t.is(podSpecOf(objects(short.output)[0]!).initContainers[0].env[2].name, 'DRAIN_FINAL_SCRAPE_WAIT')
})

test('a List and a typed List: each workload item is injected, other items pass through', (t) => {
  const items = [
    workload('Deployment', 'a'),
    workload('StatefulSet', 'b'),
    'apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}',
  ]
  const asItems = (list: string[]) => list.map((item) => `  - ${item.replace(/\n/g, '\n    ')}`).join('\n')
  for (const kind of ['List', 'DeploymentList']) {
    const result = run(`apiVersion: v1\nkind: ${kind}\nitems:\n${asItems(items)}\n`)
    t.is(result.injected, 2, kind)
    const list = objects(result.output)[0]!
    t.is(list.items.length, 3)
    t.deepEqual(podSpecOf(list.items[0]).initContainers, [expectedSidecar()])
    t.deepEqual(podSpecOf(list.items[1]).initContainers, [expectedSidecar()])
    t.deepEqual(list.items[2], objects(items[2]!)[0])
    if (kind === 'List') t.notThrows(() => validateObject(list))
  }
})

test('several documents: untouched ones come out byte for byte, comments and key order stay in changed ones', (t) => {
  const service = `---
# Source: shop/templates/service.yaml
apiVersion: v1
kind: Service
metadata: {name: web, labels: {"tier": 'front'}}   # flow style, quotes and spacing as the author wrote them
spec:
  ports: [ {port: 80} ]
`
  const deployment = `---
# Source: shop/templates/web.yaml
# The web tier.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web # its name
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      # the app
      containers:
      - name: web
        image: web:1
        volumeMounts:
        - {name: cfg, mountPath: /cfg}
      volumes:
      - name: cfg
        secret: {secretName: cfg, defaultMode: 0444}
`
  const input = `${service}${deployment}---\n# an empty document\n`
  // A hold longer than the default, so the grace period has to be added too.
  const result = run(input, { env: { ...DEFAULT_ENV, DRAIN_TIMEOUT: '40s' } })
  t.is(result.injected, 1)
  t.true(result.output.startsWith(service), 'the Service document is copied as it was')
  t.true(result.output.endsWith('---\n# an empty document\n'))
  for (const comment of ['# Source: shop/templates/web.yaml', '# The web tier.', '# its name', '# the app']) {
    t.is(result.output.split(comment).length, 2, `${comment} appears once`)
  }
  const deploymentText = result.output.slice(service.length)
  const keys = [...deploymentText.matchAll(/^ {6}(\w+):/gm)].map((m) => m[1])
  t.deepEqual(
    keys,
    ['labels', 'initContainers', 'terminationGracePeriodSeconds', 'containers', 'volumes'],
    'added keys before containers, the rest in order',
  )
  t.regex(deploymentText, /^ {6}containers:\n {6}- name: web$/m, "the chart's sequence indentation is followed")
  const [, object] = objects(result.output)
  t.is(object!.spec.template.spec.volumes[0].secret.defaultMode, 0o444, 'YAML 1.1 octal, as Kubernetes reads it')
  t.notThrows(() => validateObject(object!))
})

test('idempotent: injecting the output again changes nothing, byte for byte, with every option', (t) => {
  const input = [workload('Deployment', 'a'), workload('Job', 'b'), workload('Pod', 'c'), workload('CronJob', 'd')].join('\n---\n')
  for (const options of [{}, { rbac: true }, { classic: true, rbac: true }, { raiseGrace: true }] as Partial<
    InjectOptions & { classic: boolean }
  >[]) {
    const opts = { ...options, native: !('classic' in options) }
    const once = run(input, opts)
    const twice = inject([{ name: 'once.yaml', text: once.output }], { ...OPTIONS, ...opts })
    t.is(twice.output, once.output, JSON.stringify(options))
    t.is(twice.injected, 0)
    t.true(twice.unchanged > 0)
  }
})

test('--classic: the sidecar is a regular container after the app, without restartPolicy', (t) => {
  const result = run(workload('Deployment'), { native: false })
  const spec = podSpecOf(objects(result.output)[0]!)
  t.is(spec.initContainers, undefined)
  t.deepEqual(
    spec.containers.map((c: Container) => c.name),
    ['web', 'drain-coordinator'],
  )
  t.deepEqual(spec.containers[1], expectedSidecar(false))
  t.is(spec.containers[1].restartPolicy, undefined)
  t.deepEqual(spec.containers[0].lifecycle, { preStop: { httpGet: { path: '/prestop', port: 8099 } } })
})

test('--classic refuses pods that must complete (Jobs, CronJobs, restartPolicy Never): a classic sidecar never exits', async (t) => {
  for (const kind of ['Job', 'CronJob'] as const) {
    const input = workload(kind)
    const { status, stdout, lines } = await cli(['--classic'], input)
    t.is(status, EXIT.refused)
    t.is(stdout, input, 'written unchanged')
    t.is(
      lines[0],
      `drain-coordinator inject: refused ${kind}/web: restartPolicy ${kind === 'Job' ? 'Never' : 'OnFailure'}: a classic sidecar never exits, so the pod would never complete; use the native sidecar (no --classic, Kubernetes 1.29+)`,
    )
  }
})

test('refused: an app container with a preStop hook of its own is named and left as it was (exit 3)', async (t) => {
  const input = workload('Deployment', 'web', [{ ...APP, lifecycle: { preStop: { exec: { command: ['sleep', '20'] } } } }])
  const other = workload('StatefulSet', 'db')
  const { status, stdout, lines } = await cli([], `${input}\n---\n${other}\n`)
  t.is(status, EXIT.refused)
  t.deepEqual(lines, [
    "drain-coordinator inject: refused Deployment/web, container web: already has a preStop hook (exec); inject does not replace it: remove it (the sidecar's hook then delays SIGTERM instead) or leave this object out with --skip Deployment/web",
    'drain-coordinator inject: 1 refusal(s); those objects are written unchanged (exit status 3)',
  ])
  t.true(stdout.startsWith(`${input}\n---\n`), 'the refused object is written unchanged')
  t.deepEqual(podSpecOf(objects(stdout)[1]!).initContainers, [expectedSidecar()], 'the other object is still injected')
  const skipped = await cli(['--skip', 'deployment/web'], `${input}\n---\n${other}\n`)
  t.is(skipped.status, EXIT.ok)
  t.true(skipped.stdout.startsWith(`${input}\n---\n`))
})

test('refused: two candidate app containers without --container; --container names the app', async (t) => {
  const input = workload('Deployment', 'web', [APP, { name: 'cache', image: 'redis:7' }])
  const refused = await cli([], input)
  t.is(refused.status, EXIT.refused)
  t.is(
    refused.lines[0],
    'drain-coordinator inject: refused Deployment/web: 2 candidate app containers (web, cache): name the one that serves traffic with --container NAME',
  )
  t.is(refused.stdout, input)
  const named = await cli(['--container', 'web', '--container', 'api'], input)
  t.is(named.status, EXIT.ok)
  const spec = podSpecOf(objects(named.stdout)[0]!)
  t.truthy(spec.containers[0].lifecycle.preStop)
  t.is(spec.containers[1].lifecycle, undefined, 'the other container is left alone')
})

test('refused: an explicit grace period shorter than the budget, unless --raise-grace; one that is not a number', async (t) => {
  const input = workload('Deployment').replace(
    'serviceAccountName: web',
    'serviceAccountName: web\n      terminationGracePeriodSeconds: 25 # ours',
  )
  t.regex(input, /terminationGracePeriodSeconds: 25 # ours/)
  const refused = await cli([], input)
  t.is(refused.status, EXIT.refused)
  t.is(
    refused.lines[0],
    `drain-coordinator inject: refused Deployment/web: terminationGracePeriodSeconds 25 is shorter than the drain budget, ${BUDGET}s (DRAIN_TIMEOUT 20s + DRAIN_APP_RESERVE 10s for the app after SIGTERM): raise it to ${BUDGET} or more, or pass --raise-grace`,
  )
  t.is(refused.stdout, input)
  const raised = await cli(['--raise-grace'], input)
  t.is(raised.status, EXIT.ok)
  t.regex(raised.stdout, new RegExp(`terminationGracePeriodSeconds: ${BUDGET} # ours`), 'raised in place, its comment kept')
  const enough = await cli([], input.replace('25 # ours', '90'))
  t.is(podSpecOf(objects(enough.stdout)[0]!).terminationGracePeriodSeconds, 90, 'a longer one is kept')
  const text = await cli(['--raise-grace'], input.replace('25 # ours', '"60"'))
  t.is(text.status, EXIT.refused)
  t.is(
    text.lines[0],
    'drain-coordinator inject: refused Deployment/web: terminationGracePeriodSeconds "60" is not a whole number of seconds',
  )
})

test('a pod that already runs the sidecar keeps it; its own DRAIN_TIMEOUT sets the budget', async (t) => {
  const once = run(workload('Deployment'), { env: { ...DEFAULT_ENV, DRAIN_TIMEOUT: '60s' } }).output
  t.is(podSpecOf(objects(once)[0]!).terminationGracePeriodSeconds, 70)
  // Someone lowered the grace period by hand since: the sidecar's 60 s hold no longer fits.
  const lowered = once.replace('terminationGracePeriodSeconds: 70', 'terminationGracePeriodSeconds: 60')
  const { status, lines, stdout } = await cli([], lowered)
  t.is(status, EXIT.refused)
  t.regex(lines[0]!, /terminationGracePeriodSeconds 60 is shorter than the drain budget, 70s \(DRAIN_TIMEOUT 60s/)
  t.is(stdout, lowered)
  // A sidecar whose env the sidecar itself would reject is reported, not trusted for the budget.
  const broken = once.replace('value: 60s', 'value: soon')
  const refused = await cli([], broken)
  t.is(refused.status, EXIT.refused)
  t.is(
    refused.lines[0],
    'drain-coordinator inject: refused Deployment/web, container drain-coordinator: its env is not valid: DRAIN_TIMEOUT="soon" is not valid: expected a duration such as 500ms, 5s, 2m, 1m30s, or a number of seconds, from 1ms up to 24h',
  )
  t.is(refused.stdout, broken)
})

test('objects annotated drain-coordinator/inject: "false", other kinds and other API versions pass through', (t) => {
  const optedOut = workload('Deployment').replace('  name: web\n', '  name: web\n  annotations:\n    drain-coordinator/inject: "false"\n')
  const foreign = workload('Deployment').replace('apps/v1', 'apps.example.com/v1')
  const input = `${optedOut}\n---\n${foreign}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n`
  const result = run(input)
  t.is(result.output, input)
  t.is(result.injected + result.unchanged, 0)
})

test("--rbac: the Role and one RoleBinding per namespace, to the pods' ServiceAccounts (default when unset)", (t) => {
  const inShop = (text: string) => text.replace(/(\n {2}name: \w+\n)/, '$1  namespace: shop\n')
  const input = [
    inShop(workload('Deployment', 'web')),
    inShop(workload('StatefulSet', 'db').replace('serviceAccountName: web', 'serviceAccountName: db')),
    workload('Deployment', 'solo').replace('      serviceAccountName: web\n', ''),
  ].join('\n---\n')
  const result = run(input, { rbac: true })
  const all = objects(result.output)
  for (const object of all) t.notThrows(() => validateObject(object), `${object.kind} ${object.metadata.name}`)
  const rbac = all.filter((o) => o.apiVersion === 'rbac.authorization.k8s.io/v1')
  t.deepEqual(
    rbac.map((o) => [o.kind, o.metadata.namespace, o.subjects?.map((s: Container) => s.name)]),
    [
      ['Role', 'shop', undefined],
      ['RoleBinding', 'shop', ['web', 'db']],
      ['Role', undefined, undefined],
      ['RoleBinding', undefined, ['default']],
    ],
  )
  for (const binding of rbac.filter((o) => o.kind === 'RoleBinding'))
    t.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'drain-coordinator' })
  t.deepEqual(rbac[0]!.rules, [
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ])

  // An existing binding of ours gets the missing subject, and nothing is added twice.
  const more = inject(
    [
      { name: 'a', text: result.output },
      { name: 'b', text: inShop(workload('DaemonSet', 'agent').replace('serviceAccountName: web', 'serviceAccountName: agent')) },
    ],
    { ...OPTIONS, rbac: true },
  )
  const after = objects(more.output).filter((o) => o.kind === 'RoleBinding' && o.metadata.namespace === 'shop')
  t.is(after.length, 1)
  t.deepEqual(
    after[0]!.subjects.map((s: Container) => s.name),
    ['web', 'db', 'agent'],
  )
  t.is(objects(more.output).filter((o) => o.kind === 'Role').length, 2)
})

test('bad arguments and bad input: exit 2, one line, nothing written', async (t) => {
  const cases: [string[], string, RegExp][] = [
    [['--nope'], '', /^drain-coordinator inject: Unknown option '--nope'.* \(see --help\)$/],
    [['--env', 'DRAIN_TIMEOUT=soon'], '', /^drain-coordinator inject: --env: DRAIN_TIMEOUT="soon" is not valid: expected a duration/],
    [['--env', 'DRAIN_TIMEOUTS=20s'], '', /DRAIN_TIMEOUTS="20s" is not valid: expected a DRAIN_\* variable the sidecar reads/],
    [['--env', 'POD_NAME=x'], '', /POD_NAME="x" is not valid: .*POD_\* come from the Downward API/],
    [['--env', 'DRAIN_HOOK_TOKEN=secret-value-1234'], '', /DRAIN_HOOK_TOKEN="<redacted>" is not valid: expected no hook token from inject/],
    [['--env', 'novalue'], '', /--env "novalue": expected NAME=VALUE/],
    [['--skip', 'web'], '', /--skip "web": expected KIND\/NAME/],
    [['missing.yaml'], '', /cannot read "missing.yaml": ENOENT/],
    [[], 'kind: Pod\nspec: [unclosed\n', /^drain-coordinator inject: <stdin>:\d+:\d+: not valid YAML: /],
  ]
  for (const [args, stdin, line] of cases) {
    const { status, stdout, lines } = await cli(args, stdin)
    t.is(status, EXIT.usage, args.join(' '))
    t.is(stdout, '')
    t.is(lines.length, 1, args.join(' '))
    t.regex(lines[0]!, line)
  }
  t.false((await cli(['--env', 'DRAIN_HOOK_TOKEN=secret-value-1234'])).stderr.includes('secret-value-1234'), 'a token is never echoed')
})

test('files and stdin: in order, one stream, a document marker between inputs; --image and --env reach the sidecar', async (t) => {
  const files = { 'a.yaml': workload('Deployment', 'a'), 'b.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}' }
  const { status, stdout } = await cli(
    ['--image', 'ghcr.io/acme/drain-coordinator:9', '--env', 'DRAIN_ENDPOINT_MODE=poll', 'a.yaml', '-', 'b.yaml'],
    workload('Pod', 'p'),
    files,
  )
  t.is(status, EXIT.ok)
  const all = objects(stdout)
  t.deepEqual(
    all.map((o) => `${o.kind}/${o.metadata.name}`),
    ['Deployment/a', 'Pod/p', 'ConfigMap/b'],
  )
  const sidecar = podSpecOf(all[1]!).initContainers[0]
  t.is(sidecar.image, 'ghcr.io/acme/drain-coordinator:9')
  t.deepEqual(sidecar.env.slice(0, 3), [
    { name: 'DRAIN_TIMEOUT', value: '20s' },
    { name: 'DRAIN_SETTLE', value: '5s' },
    { name: 'DRAIN_ENDPOINT_MODE', value: 'poll' },
  ])
  t.true(stdout.endsWith('---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}'), 'the last file as it was, after a marker')
  const empty = await cli([], 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n')
  t.is(empty.status, EXIT.ok)
  t.regex(empty.stderr, /no Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or Pod in the input/)
  t.regex((await cli(['--help'])).stdout, /^Usage: drain-coordinator inject/)
})
