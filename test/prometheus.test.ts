/**
 * Alerts and dashboard against Prometheus itself (Debian package prometheus: promtool and the server).
 * promtool checks and unit-tests the rule file; a real Prometheus scrapes two running sidecars through one drain
 * each (one completes, one hits DRAIN_TIMEOUT, and the API answers one request with a 500), evaluates the rule
 * file, and every dashboard query and alert returns data from what it scraped.
 */
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import test from 'ava'
import { YAML } from 'zx'
import { startFakeKube } from '../sim/fakes/fake-kube.ts'
import { endpointSlice, READY, TERMINATING } from '../sim/fakes/fixtures.ts'
import { MANIFESTS, theOne, render, sidecarOf } from '../sim/cluster/manifests.ts'
import { freePort, startSidecar } from '../sim/fakes/sidecar-process.ts'

const run = promisify(execFile)
const MONITORING = join(MANIFESTS, 'monitoring')
const RULES_FILE = join(MONITORING, 'drain-coordinator.rules.yml')
const RULES = YAML.parse(readFileSync(RULES_FILE, 'utf8')) as {
  groups: Array<{ name: string; rules: Array<{ alert?: string; record?: string; expr: string }> }>
}
const DASHBOARD = JSON.parse(readFileSync(join(MONITORING, 'grafana-dashboard.json'), 'utf8')) as {
  panels: Array<{ title: string; type: string; targets?: Array<{ expr: string }> }>
}
const ALERTS = RULES.groups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined)
const RECORDS = RULES.groups.flatMap((g) => g.rules).filter((r) => r.record !== undefined)

async function promtool(...args: string[]) {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd: MONITORING })
    return { code: 0, output: stdout + stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, output: e.stdout + e.stderr }
  }
}

test('promtool check rules accepts the rule file', async (t) => {
  const { code, output } = await promtool('check', 'rules', 'drain-coordinator.rules.yml')
  t.is(code, 0, output)
  t.regex(output, new RegExp(`SUCCESS: ${ALERTS.length + RECORDS.length} rules found`))
})

test('promtool test rules: each alert fires where it must and stays silent where it must not', async (t) => {
  const { code, output } = await promtool('test', 'rules', 'drain-coordinator.rules.test.yml')
  t.is(code, 0, output)
  t.regex(output, /SUCCESS/)
  // Every alert has a firing case and a silent case in the unit tests.
  const unit = YAML.parse(readFileSync(join(MONITORING, 'drain-coordinator.rules.test.yml'), 'utf8')) as {
    tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }>
  }
  const cases = unit.tests.flatMap((u) => u.alert_rule_test)
  for (const { alert } of ALERTS) {
    t.true(
      cases.some((c) => c.alertname === alert && c.exp_alerts.length > 0),
      `${alert} fires in a test`,
    )
    t.true(
      cases.some((c) => c.alertname === alert && c.exp_alerts.length === 0),
      `${alert} is silent in a test`,
    )
  }
})

test('every alert has a severity, a summary and a runbook line', (t) => {
  const rules = RULES.groups.flatMap((g) => g.rules) as Array<{
    alert?: string
    labels?: Record<string, string>
    annotations?: Record<string, string>
  }>
  for (const rule of rules.filter((r) => r.alert)) {
    t.truthy(rule.labels?.severity, rule.alert)
    t.truthy(rule.annotations?.summary, rule.alert)
    t.true((rule.annotations?.runbook ?? '').length > 40, `${rule.alert} runbook`)
  }
})

test('the PrometheusRule is generated from the rule file and in step with it', async (t) => {
  const rule = theOne(render('monitoring'), 'PrometheusRule')
  t.deepEqual(rule.spec.groups, RULES.groups)
  const { stdout } = await run(process.execPath, [join(MONITORING, 'sync-prometheusrule.mjs'), '--check'])
  t.regex(stdout, /in step/)
})

/** Grafana's variables, as the test Prometheus sees them: one namespace, windows long enough for the drains. */
function concrete(expr: string): string {
  return expr.replaceAll('$namespace', 'shop').replaceAll('$__rate_interval', '5m').replaceAll('$__range', '15m')
}

const DASHBOARD_QUERIES = DASHBOARD.panels.flatMap((p) => (p.targets ?? []).map((target) => ({ panel: p.title, expr: target.expr })))

test('the dashboard queries only drain-coordinator metrics and the process metrics it exports', (t) => {
  t.true(DASHBOARD_QUERIES.length >= 10)
  const exported = /^(drain_coordinator_\w+|process_resident_memory_bytes)$/
  for (const { panel, expr } of DASHBOARD_QUERIES) {
    const names = [...expr.matchAll(/\b([a-z_:]+)\{/g)].map((m) => m[1]!)
    t.true(names.length > 0, panel)
    for (const name of names) t.regex(name.replace(/_(bucket|sum|count)$/, ''), exported, `${panel}: ${name}`)
  }
})

test('a real Prometheus scrapes two sidecars through their drains; every dashboard query and alert returns data', async (t) => {
  t.timeout(180_000)
  const dir = await mkdtemp(join(tmpdir(), 'drain-coordinator-prometheus-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'token'), 'test-token')

  // The fake API server: two Services, one pod each.
  const kube = await startFakeKube({ namespace: 'shop' })
  t.teardown(() => kube.close())
  const pods = {
    fast: { name: 'web-0', uid: 'uid-web-0', ip: '10.0.0.10', slice: 'web-aaaaa' },
    stuck: { name: 'api-0', uid: 'uid-api-0', ip: '10.0.0.20', slice: 'api-bbbbb' },
  }
  const slice = (pod: (typeof pods)['fast'], conditions: object | null) =>
    endpointSlice({
      name: pod.slice,
      namespace: 'shop',
      endpoints: conditions === null ? null : [{ ip: pod.ip, podName: pod.name, uid: pod.uid, ...conditions }],
    })
  kube.upsert(slice(pods.fast, READY))
  kube.upsert(slice(pods.stuck, READY))

  const env = (pod: (typeof pods)['fast'], timeout: string) => ({
    DRAIN_KUBE_API_URL: kube.url,
    DRAIN_KUBE_CA_FILE: kube.caFile,
    DRAIN_KUBE_TOKEN_FILE: join(dir, 'token'),
    POD_NAMESPACE: 'shop',
    POD_NAME: pod.name,
    POD_UID: pod.uid,
    POD_IP: pod.ip,
    DRAIN_TIMEOUT: timeout,
    DRAIN_SETTLE: '500ms',
  })
  const fast = await startSidecar(env(pods.fast, '30s'))
  t.teardown(() => fast.stop())
  const stuck = await startSidecar(env(pods.stuck, '3s'))
  t.teardown(() => stuck.stop())

  // Prometheus: scrape both every second, evaluate the rule file every second.
  const port = await freePort()
  const target = (sidecar: typeof fast, pod: string) => ({
    targets: [`127.0.0.1:${sidecar.port}`],
    labels: { namespace: 'shop', pod, container: 'drain-coordinator' },
  })
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: [RULES_FILE],
    scrape_configs: [{ job_name: 'drain-coordinator', static_configs: [target(fast, pods.fast.name), target(stuck, pods.stuck.name)] }],
  }
  await writeFile(join(dir, 'prometheus.yml'), YAML.stringify(config))
  const prometheus = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let prometheusLog = ''
  prometheus.stderr.setEncoding('utf8').on('data', (chunk: string) => (prometheusLog += chunk))
  const prometheusExited = new Promise<void>((resolve) => prometheus.on('exit', () => resolve()))
  t.teardown(async () => {
    prometheus.kill('SIGKILL')
    await prometheusExited
  })
  const api = `http://127.0.0.1:${port}/api/v1`

  async function query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
    const response = await fetch(`${api}/query?${new URLSearchParams({ query: expr })}`)
    const body = (await response.json()) as {
      status: string
      error?: string
      data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> }
    }
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`)
    return body.data!.result
  }
  /** Polls until check() returns a value (generous: two busy cores), else fails with the last state. */
  async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    let last: unknown
    for (const until = Date.now() + timeoutMs; Date.now() < until;) {
      try {
        const value = await check()
        if (value !== undefined) return value
      } catch (error) {
        last = error
      }
      if (prometheus.exitCode !== null) throw new Error(`prometheus exited: ${prometheusLog}`)
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
    throw new Error(`${what}: not within ${timeoutMs}ms (${String(last ?? 'no data')}); prometheus log: ${prometheusLog.slice(-2000)}`)
  }

  await eventually('both targets up', async () =>
    (await query('sum(up{job="drain-coordinator"})'))[0]?.value[1] === '2' ? true : undefined,
  )

  // One drain each. The first LIST is answered 500: the sidecar retries, and the API error is counted.
  kube.fault({ kind: 'status', status: 500, body: 'etcdserver: request timed out' }, 'list')
  const fastHook = fetch(`${fast.url}/prestop`).then((r) => r.json() as Promise<{ outcome: string }>)
  const stuckHook = fetch(`${stuck.url}/prestop`).then((r) => r.json() as Promise<{ outcome: string }>)
  await fast.waitForLog('drain_started')
  kube.upsert(slice(pods.fast, TERMINATING))
  await new Promise((resolve) => setTimeout(resolve, 300))
  kube.upsert(slice(pods.fast, null))
  t.is((await fastHook).outcome, 'completed')
  t.is((await stuckHook).outcome, 'timeout', 'api-0 never left its slice: released at DRAIN_TIMEOUT')

  await eventually('both drains scraped', async () =>
    (await query('sum(drain_coordinator_drains_total)'))[0]?.value[1] === '2' ? true : undefined,
  )

  // Every dashboard query returns data.
  for (const { panel, expr } of DASHBOARD_QUERIES) {
    // eventually() fails the test unless the query returns data within its limit.
    await eventually(`dashboard "${panel}": ${concrete(expr)}`, async () => {
      const series = await query(concrete(expr))
      return series.length > 0 && series.every((s) => s.value[1] !== 'NaN') ? series : undefined
    })
  }
  const errors = await query(concrete(DASHBOARD_QUERIES.find((q) => q.panel === 'Kubernetes API errors')!.expr))
  t.deepEqual(
    errors.map((s) => [s.metric.verb, s.metric.code, Number(s.value[1]) >= 1]),
    [['list', '500', true]],
    'the injected 500 is on the dashboard',
  )
  const phases = (await query(concrete(DASHBOARD_QUERIES.find((q) => q.panel.startsWith('Phase duration'))!.expr)))
    .map((s) => s.metric.phase)
    .sort()
  t.deepEqual(phases, ['endpoints', 'settle'], 'the phases that ran (no app shutdown URL, no Envoy configured)')

  // Every recording rule returns data; the timeout and API error alerts fire, with the labels from this scenario.
  for (const { record } of RECORDS) {
    await eventually(`recording rule ${record}`, async () => ((await query(record!)).length > 0 ? true : undefined))
  }
  let seen = ''
  const firing = await eventually('alerts firing', async () => {
    const response = (await (await fetch(`${api}/alerts`)).json()) as {
      data: { alerts: Array<{ labels: Record<string, string>; state: string }> }
    }
    const names = response.data.alerts.filter((a) => a.state === 'firing')
    seen = JSON.stringify(response.data.alerts) + JSON.stringify(await query('drain_coordinator_kube_api_requests_total'))
    return names.some((a) => a.labels.alertname === 'DrainCoordinatorDrainTimeouts') &&
      names.some((a) => a.labels.alertname === 'DrainCoordinatorKubeAPIErrors')
      ? names
      : undefined
  }).catch((error: Error) => {
    throw new Error(`${error.message}; alerts and API request counters seen: ${seen}`)
  })
  t.like(firing.find((a) => a.labels.alertname === 'DrainCoordinatorDrainTimeouts')!.labels, { namespace: 'shop', severity: 'warning' })
  t.like(firing.find((a) => a.labels.alertname === 'DrainCoordinatorKubeAPIErrors')!.labels, {
    namespace: 'shop',
    verb: 'list',
    code: '500',
  })
  // Slow drains need a day of history to compare with; here its inputs are real and equal, so it stays silent.
  const slow = ALERTS.find((a) => a.alert === 'DrainCoordinatorSlowDrains')!
  t.deepEqual(await query(slow.expr), [])
  const [hour] = await query('namespace:drain_coordinator_drain_duration_seconds:p90_1h')
  const [day] = await query('namespace:drain_coordinator_drain_duration_seconds:p90_1d')
  t.is(hour!.value[1], day!.value[1])
  t.true(Number(hour!.value[1]) > 0)
  t.is(firing.filter((a) => a.labels.alertname === 'DrainCoordinatorSlowDrains').length, 0)

  // Memory, measured through the drains: the peak RSS stays well under the limit in the manifests.
  const [peak] = await query('max(max_over_time(process_resident_memory_bytes{job="drain-coordinator"}[15m]))')
  const limit = sidecarOf(theOne(render('example'), 'Deployment'))!.container.resources.limits.memory as string
  const limitBytes = Number(/^(\d+)Mi$/.exec(limit)![1]) * 1024 * 1024
  const peakBytes = Number(peak!.value[1])
  t.log(`peak RSS of a sidecar through a drain: ${(peakBytes / 1024 / 1024).toFixed(1)} MiB (memory limit ${limit})`)
  t.true(peakBytes < limitBytes * 0.75, `peak ${peakBytes} B leaves at least 25% headroom under ${limit}`)
})
