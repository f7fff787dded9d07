/**
 * The `inject` subcommand's command line: arguments, inputs and exit status. main.ts hands it the process's
 * files and streams, so this module reads nothing by itself (and can be tested without a process).
 */
import { parseArgs } from 'node:util'
import { ConfigError } from '../errors.ts'
import { InjectInputError, type Source } from './documents.ts'
import { inject } from './inject.ts'
import { DEFAULT_ENV, DEFAULT_IMAGE, sidecarConfig } from './sidecar-spec.ts'
import { OPT_OUT_ANNOTATION } from './workload.ts'

/** Exit statuses, documented in the README (Adding it to a pod). */
export const EXIT = Object.freeze({ ok: 0, usage: 2, refused: 3 })

export type InjectIo = {
  readFile(path: string): Promise<string>
  readStdin(): Promise<string>
  write(text: string): void
  warn(line: string): void
}

export const USAGE = `Usage: drain-coordinator inject [options] [FILE ...]

Reads Kubernetes YAML (several documents, Lists) from the files, or from stdin without files or with -, and
writes it to stdout with drain-coordinator added to every Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
CronJob and Pod: the sidecar, the app container's preStop hook, and a terminationGracePeriodSeconds that covers
the drain when the pod has none. Works as a Helm post-renderer: helm install --post-renderer drain-coordinator
--post-renderer-args inject. Objects annotated ${OPT_OUT_ANNOTATION}: "false" are left alone.

Options:
  --image IMAGE        the sidecar's image (default ${DEFAULT_IMAGE})
  --classic            a regular container instead of a native sidecar, for clusters before Kubernetes 1.29
  --container NAME     the app container, where a pod has several (repeatable)
  --env NAME=VALUE     a DRAIN_* variable for the sidecar (repeatable; default ${Object.entries(DEFAULT_ENV)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')})
  --rbac               also add the Role and a RoleBinding to the pods' ServiceAccounts
  --raise-grace        raise a terminationGracePeriodSeconds shorter than the drain budget instead of refusing
  --skip KIND/NAME     leave this object alone (repeatable)
  -h, --help           this text

Exit status: 0 done; 2 bad arguments or input (nothing written); 3 some objects refused (one line each on
stderr; the output is written with those objects unchanged).
`

export async function runInject(args: readonly string[], io: InjectIo): Promise<number> {
  const usage = (message: string) => {
    io.warn(`drain-coordinator inject: ${message} (see --help)\n`)
    return EXIT.usage
  }
  let parsed
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        image: { type: 'string' },
        classic: { type: 'boolean' },
        container: { type: 'string', multiple: true },
        env: { type: 'string', multiple: true },
        rbac: { type: 'boolean' },
        'raise-grace': { type: 'boolean' },
        skip: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (error) {
    return usage((error as Error).message.split('\n')[0]!)
  }
  const { values, positionals } = parsed
  if (values.help) {
    io.write(USAGE)
    return EXIT.ok
  }
  const env: Record<string, string> = { ...DEFAULT_ENV }
  for (const entry of values.env ?? []) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(entry)
    if (!match) return usage(`--env ${JSON.stringify(entry)}: expected NAME=VALUE`)
    env[match[1]!] = match[2]!
  }
  try {
    sidecarConfig(env, { strict: true })
  } catch (error) {
    if (error instanceof ConfigError) return usage(`--env: ${error.message}`)
    throw error
  }
  const image = values.image ?? DEFAULT_IMAGE
  if (!/^[^\s]+$/.test(image))
    return usage(`--image ${JSON.stringify(image)}: expected an image reference such as ghcr.io/acme/drain-coordinator:0.1.0`)
  const skip = values.skip ?? []
  const badSkip = skip.find((entry) => !/^[A-Za-z]+\/[^/\s]+$/.test(entry))
  if (badSkip !== undefined) return usage(`--skip ${JSON.stringify(badSkip)}: expected KIND/NAME, such as Deployment/web`)

  const sources: Source[] = []
  try {
    for (const file of positionals.length === 0 ? ['-'] : positionals) {
      sources.push(file === '-' ? { name: '<stdin>', text: await io.readStdin() } : { name: file, text: await io.readFile(file) })
    }
  } catch (error) {
    const e = error as NodeJS.ErrnoException
    return usage(`cannot read ${JSON.stringify(e.path ?? 'stdin')}: ${e.code ?? e.message}`)
  }

  let result
  try {
    result = inject(sources, {
      image,
      native: values.classic !== true,
      env,
      containers: values.container ?? [],
      raiseGrace: values['raise-grace'] === true,
      skip,
      rbac: values.rbac === true,
    })
  } catch (error) {
    if (error instanceof InjectInputError) return usage(error.message)
    throw error
  }
  io.write(result.output)
  for (const line of result.refusals) io.warn(`drain-coordinator inject: refused ${line}\n`)
  if (result.refusals.length > 0) {
    io.warn(
      `drain-coordinator inject: ${result.refusals.length} refusal(s); those objects are written unchanged (exit status ${EXIT.refused})\n`,
    )
    return EXIT.refused
  }
  if (result.injected + result.unchanged === 0)
    io.warn(
      'drain-coordinator inject: no Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or Pod in the input; written unchanged\n',
    )
  return EXIT.ok
}
