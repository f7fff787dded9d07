#!/usr/bin/env zx
// Writes prometheusrule.yaml (prometheus-operator) from drain-coordinator.rules.yml, the source of truth that
// promtool reads. `--check` writes nothing and exits 1 when prometheusrule.yaml is out of step.
//   node manifests/monitoring/sync-prometheusrule.mjs [--check]
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { YAML } from 'zx'

const RULES_FILE = fileURLToPath(new URL('drain-coordinator.rules.yml', import.meta.url))
const PROMETHEUS_RULE_FILE = fileURLToPath(new URL('prometheusrule.yaml', import.meta.url))

/** The PrometheusRule document for a promtool rule file's text. */
function renderPrometheusRule(rulesText) {
  const { groups } = YAML.parse(rulesText)
  const rule = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'drain-coordinator',
      labels: { 'app.kubernetes.io/name': 'drain-coordinator', 'app.kubernetes.io/component': 'monitoring' },
    },
    spec: { groups },
  }
  return (
    '# GENERATED from drain-coordinator.rules.yml by sync-prometheusrule.mjs: edit that file, then run\n' +
    '#   node manifests/monitoring/sync-prometheusrule.mjs\n' +
    '# Your Prometheus custom resource selects rules by label (spec.ruleSelector): add the labels it expects.\n' +
    YAML.stringify(rule, { lineWidth: 0 })
  )
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const wanted = renderPrometheusRule(readFileSync(RULES_FILE, 'utf8'))
  if (process.argv.includes('--check')) {
    let current = ''
    try {
      current = readFileSync(PROMETHEUS_RULE_FILE, 'utf8')
    } catch {
      // a missing file is out of step, like a stale one
    }
    if (current !== wanted) {
      console.error(
        'prometheusrule.yaml is out of step with drain-coordinator.rules.yml: run node manifests/monitoring/sync-prometheusrule.mjs',
      )
      process.exit(1)
    }
    console.log('prometheusrule.yaml is in step with drain-coordinator.rules.yml')
  } else {
    writeFileSync(PROMETHEUS_RULE_FILE, wanted)
    console.log(`wrote ${PROMETHEUS_RULE_FILE}`)
  }
}
