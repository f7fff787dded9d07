/**
 * The kustomize Components a user adds to their own kustomization (manifests/components/), rendered with the real
 * kustomize against a Deployment that is not the example (its own ServiceAccount, an init container, a postStart
 * hook), each alone after ../drain-coordinator and all together; and `drain-coordinator inject`, which must add
 * exactly what the components render.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import test from 'ava'
import { parseAllDocuments, stringify } from 'yaml'
import { toolBinary } from '../scripts/tools.mjs'
import { parseConfig } from '../src/config.ts'
import { HOOK_TOKEN_HEADER } from '../src/hook-auth.ts'
import { inject } from '../src/inject/inject.ts'
import { DEFAULT_ENV, DEFAULT_IMAGE } from '../src/inject/sidecar-spec.ts'
import { type Container, find, type K8sObject, MANIFESTS, theOne, render, sidecarOf, validateObject } from '../sim/cluster/manifests.ts'
import { checkSidecarWiring, configOf, resolvePort } from './helpers/sidecar-wiring.ts'

const USER_DEPLOYMENT = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'api', labels: { app: 'api' } },
  spec: {
    selector: { matchLabels: { app: 'api' } },
    template: {
      metadata: { labels: { app: 'api' } },
      spec: {
        serviceAccountName: 'api',
        terminationGracePeriodSeconds: 60,
        initContainers: [{ name: 'migrate', image: 'api:2', command: ['/api', 'migrate'] }],
        containers: [
          {
            name: 'api',
            image: 'api:2',
            ports: [{ name: 'http', containerPort: 9000 }],
            lifecycle: { postStart: { exec: { command: ['/api', 'warm'] } } },
          },
        ],
      },
    },
  },
}
const USER_OBJECTS = [
  USER_DEPLOYMENT,
  { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'api' } },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'api' },
    spec: { selector: { app: 'api' }, ports: [{ port: 80, targetPort: 'http' }] },
  },
]
const TOKEN = `t-${Math.random().toString(36).slice(2)}-${Date.now()}`
const USER_SECRET = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'drain-coordinator-hook-token' }, stringData: { token: TOKEN } }

type Build = { ok: true; objects: K8sObject[] } | { ok: false; stderr: string }

/** `kustomize build` of a throw-away kustomization: the user's objects plus the named components, in order. */
function build(components: string[], objects: object[] = USER_OBJECTS): Build {
  const dir = mkdtempSync(join(tmpdir(), 'drain-coordinator-components-'))
  try {
    writeFileSync(join(dir, 'objects.yaml'), objects.map((o) => stringify(o)).join('---\n'))
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      stringify({ resources: ['objects.yaml'], components: components.map((c) => relative(dir, join(MANIFESTS, 'components', c))) }),
    )
    const text = execFileSync(toolBinary('kustomize'), ['build', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    return { ok: true, objects: parse(text) }
  } catch (error) {
    return { ok: false, stderr: String((error as { stderr?: string }).stderr) }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function built(components: string[], objects?: object[]): K8sObject[] {
  const result = build(components, objects)
  if (!result.ok) throw new Error(`kustomize build with ${components.join(', ')} failed: ${result.stderr}`)
  return result.objects
}

function parse(text: string): K8sObject[] {
  return parseAllDocuments(text, { version: '1.1' })
    .map((d) => d.toJSON() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null)
}

const VARIANTS: Record<string, { native: boolean; objects?: object[] }> = {
  'classic-sidecar': { native: false },
  'poll-mode': { native: true },
  istio: { native: true },
  'hook-token': { native: true, objects: [...USER_OBJECTS, USER_SECRET] },
  'scrape-annotations': { native: true },
}

for (const [variant, { native, objects }] of Object.entries(VARIANTS)) {
  test(`${variant}: added after drain-coordinator to a user's Deployment, valid and wired as the sidecar expects`, async (t) => {
    const rendered = built(['drain-coordinator', variant], objects)
    for (const object of rendered) t.notThrows(() => validateObject(object), `${object.kind} ${object.metadata.name}`)
    await checkSidecarWiring(t, rendered, native)
    const pod = theOne(rendered, 'Deployment').spec.template.spec
    const before = USER_DEPLOYMENT.spec.template.spec
    t.deepEqual(
      pod.initContainers.find((c: Container) => c.name === 'migrate'),
      before.initContainers[0],
      "the app's init container stays",
    )
    const app = pod.containers.find((c: Container) => c.name === 'api')
    t.deepEqual(app.lifecycle.postStart, before.containers[0]!.lifecycle.postStart, 'its postStart hook stays')
    t.is(app.lifecycle.preStop.httpGet.path, '/prestop')
  })
}

test('classic-sidecar: the same container as the native sidecar, minus restartPolicy and with HOST_IP from status.hostIP (before 1.29), moved out of initContainers', (t) => {
  const native = sidecarOf(theOne(built(['drain-coordinator']), 'Deployment'))!.container
  const classic = theOne(built(['drain-coordinator', 'classic-sidecar']), 'Deployment')
  const { restartPolicy, ...expected } = native
  t.is(restartPolicy, 'Always')
  const hostIp = { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } }
  const expectedEnv = expected.env.map((variable: Container) => (variable.name === 'HOST_IP' ? hostIp : variable))
  t.deepEqual(withEnvByName(sidecarOf(classic)!.container), withEnvByName({ ...expected, env: expectedEnv }))
  t.false(sidecarOf(classic)!.native)
  t.deepEqual(
    classic.spec.template.spec.initContainers.map((c: Container) => c.name),
    ['migrate'],
  )
})

test('poll-mode: the sidecar polls, and the Role no longer grants watch', (t) => {
  const rendered = built(['drain-coordinator', 'poll-mode'])
  t.is(configOf(sidecarOf(theOne(rendered, 'Deployment'))!.container).config.endpointMode, 'poll')
  t.deepEqual(theOne(rendered, 'Role').rules, [
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list'] },
    ...theOne(render('base'), 'Role').rules.slice(1),
  ])
})

test('istio: Envoy admin URL set, and the sidecar port excluded from inbound capture', (t) => {
  const deployment = theOne(built(['drain-coordinator', 'istio']), 'Deployment')
  const { config } = configOf(sidecarOf(deployment)!.container)
  t.is(config.envoyAdminUrl, 'http://127.0.0.1:15000/')
  const excluded = deployment.spec.template.metadata.annotations['traffic.sidecar.istio.io/excludeInboundPorts'].split(',')
  t.true(excluded.includes(String(config.port)))
})

test("hook-token: the header kubelet sends is the token of the user's own Secret, which the sidecar reads", (t) => {
  const objects = built(['drain-coordinator', 'hook-token'], [...USER_OBJECTS, USER_SECRET])
  const deployment = theOne(objects, 'Deployment')
  const sidecar = sidecarOf(deployment)!.container
  const { config } = configOf(sidecar)
  t.truthy(config.hookToken && 'file' in config.hookToken)
  const file = (config.hookToken as { file: string }).file
  const mount = sidecar.volumeMounts.find((m: Container) => file.startsWith(`${m.mountPath}/`))
  t.truthy(mount, 'DRAIN_HOOK_TOKEN_FILE is inside a volume mount')
  const volume = deployment.spec.template.spec.volumes.find((v: Container) => v.name === mount.name)
  t.is(volume.secret.defaultMode, 0o444, "readable by the sidecar's user")
  const secret = theOne(objects, 'Secret', volume.secret.secretName)
  t.is(secret.stringData[file.slice(mount.mountPath.length + 1)], TOKEN)
  const app = deployment.spec.template.spec.containers.find((c: Container) => c.name === 'api')
  const headers = app.lifecycle.preStop.httpGet.httpHeaders
  t.deepEqual(
    headers.map((h: Container) => ({ name: h.name.toLowerCase(), value: h.value })),
    [{ name: HOOK_TOKEN_HEADER, value: TOKEN }],
  )
  t.notThrows(() => parseConfig({ DRAIN_HOOK_TOKEN: TOKEN }), 'the token is one the sidecar accepts')
})

test("hook-token: without the user's Secret the build fails, and no Secret ships under manifests/", (t) => {
  const result = build(['drain-coordinator', 'hook-token'])
  t.false(result.ok)
  t.regex((result as { stderr: string }).stderr, /drain-coordinator-hook-token/)
  const secrets: string[] = []
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry)
      if (statSync(path).isDirectory()) walk(path)
      else if (/\.ya?ml$/.test(entry) && parse(readFileSync(path, 'utf8')).some((o) => o?.kind === 'Secret'))
        secrets.push(relative(MANIFESTS, path))
    }
  }
  walk(MANIFESTS)
  t.deepEqual(secrets, [])
})

test('scrape-annotations: the annotations point at the port and path the PodMonitor scrapes', (t) => {
  const deployment = theOne(built(['drain-coordinator', 'scrape-annotations']), 'Deployment')
  const sidecar = sidecarOf(deployment)!.container
  const endpoint = theOne(render('monitoring'), 'PodMonitor').spec.podMetricsEndpoints[0]
  const annotations = deployment.spec.template.metadata.annotations
  t.is(annotations['prometheus.io/scrape'], 'true')
  t.is(Number(annotations['prometheus.io/port']), resolvePort(endpoint.port, sidecar))
  t.is(annotations['prometheus.io/path'], endpoint.path)
})

test("all variants together, classic-sidecar last: one classic sidecar carrying every variant's settings", async (t) => {
  const rendered = built(
    ['drain-coordinator', 'poll-mode', 'istio', 'hook-token', 'scrape-annotations', 'classic-sidecar'],
    [...USER_OBJECTS, USER_SECRET],
  )
  for (const object of rendered) t.notThrows(() => validateObject(object), `${object.kind} ${object.metadata.name}`)
  await checkSidecarWiring(t, rendered, false)
  const { config } = configOf(sidecarOf(theOne(rendered, 'Deployment'))!.container)
  t.like(config, {
    endpointMode: 'poll',
    envoyAdminUrl: 'http://127.0.0.1:15000/',
    hookToken: { file: '/var/run/drain-coordinator/hook-token/token' },
  })
})

const INJECT_OPTIONS = { image: DEFAULT_IMAGE, env: DEFAULT_ENV, containers: [], raiseGrace: false, skip: [], rbac: true }
const byName = (a: Container, b: Container) => a.name.localeCompare(b.name)

/** A Deployment with its container lists in name order: kustomize and inject may place the sidecar differently. */
function sorted(deployment: K8sObject): K8sObject {
  const copy = structuredClone(deployment)
  const spec = copy.spec.template.spec
  spec.containers = spec.containers.sort(byName).map(withEnvByName)
  spec.initContainers = spec.initContainers?.sort(byName).map(withEnvByName)
  return copy
}

/**
 * A container with its env in name order. A strategic-merge patch puts the entries it adds first; the order carries
 * no meaning here, since no value refers to another variable with $(NAME).
 */
function withEnvByName(container: Container): Container {
  return container.env === undefined ? container : { ...container, env: [...container.env].sort(byName) }
}

test('inject adds exactly what the drain-coordinator component renders, and the Role of manifests/base', (t) => {
  const fromComponent = built(['drain-coordinator'])
  const result = inject([{ name: 'user.yaml', text: USER_OBJECTS.map((o) => stringify(o)).join('---\n') }], {
    ...INJECT_OPTIONS,
    native: true,
  })
  t.deepEqual(result.refusals, [])
  const injected = parse(result.output)
  t.deepEqual(sorted(theOne(injected, 'Deployment')), sorted(theOne(fromComponent, 'Deployment')))
  t.deepEqual(theOne(injected, 'Role'), theOne(render('base'), 'Role'))
  t.deepEqual(theOne(injected, 'RoleBinding'), theOne(fromComponent, 'RoleBinding'))
  t.is(find(injected, 'ServiceAccount').length, 1, "the user's own, no other")
})

test('inject --classic adds exactly what drain-coordinator plus classic-sidecar render', (t) => {
  const fromComponents = built(['drain-coordinator', 'classic-sidecar'])
  const result = inject([{ name: 'user.yaml', text: stringify(USER_DEPLOYMENT) }], { ...INJECT_OPTIONS, native: false })
  t.deepEqual(sorted(theOne(parse(result.output), 'Deployment')), sorted(theOne(fromComponents, 'Deployment')))
})
