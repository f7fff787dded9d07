/**
 * The CA bundle the Kubernetes API server's certificate must chain to. kubelet rewrites the projected ca.crt when
 * the cluster CA rotates (first the old and new CA together, later the new alone), so the bundle is read again
 * every 10 s and at once after a certificate verification failure (at most once a second), and the API transport
 * is rebuilt with it when it changed. A bundle that becomes unreadable, too large or invalid is logged once per
 * problem and the previous CA kept: a good CA is never thrown away for a bad one.
 */
import { X509Certificate } from 'node:crypto'
import type { Clock } from './clock.ts'
import { DrainCoordinatorError } from './errors.ts'
import type { Logger } from './log.ts'

export const CA_CHECK_INTERVAL_MS = 10_000
/** Failing handshakes come in bursts (every retry of every request): one re-read per second is enough. */
export const CA_RECHECK_MIN_GAP_MS = 1_000

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

/** The number of certificates in a PEM bundle; throws when there is none, or one does not parse. */
export function countCaCertificates(pem: string): number {
  const blocks = pem.match(PEM_CERTIFICATE) ?? []
  if (blocks.length === 0) throw new DrainCoordinatorError('CA_BUNDLE_INVALID', 'no PEM certificate (-----BEGIN CERTIFICATE-----) in it')
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block)
    } catch (error) {
      throw new DrainCoordinatorError('CA_BUNDLE_INVALID', `certificate ${i + 1} of ${blocks.length} does not parse`, { cause: error })
    }
  })
  return blocks.length
}

export type CaCheckReason = 'interval' | 'certificate-error'

export function createCaBundleWatcher(deps: {
  file: string
  /** The bundle read at start-up, already in use. */
  initial: string
  read: (path: string) => Promise<string>
  /** Rebuilds the API transport with a new bundle. */
  apply: (pem: string) => void
  clock: Clock
  log: Logger
}) {
  let current = deps.initial
  let lastCheck = Number.NEGATIVE_INFINITY
  let lastProblem: string | undefined

  async function check(reason: CaCheckReason): Promise<boolean> {
    if (reason === 'certificate-error' && deps.clock.now() - lastCheck < CA_RECHECK_MIN_GAP_MS) return false
    lastCheck = deps.clock.now()
    let pem: string
    let certificates: number
    try {
      pem = await deps.read(deps.file)
      certificates = countCaCertificates(pem)
    } catch (error) {
      const problem = error instanceof Error ? error.message : String(error)
      if (problem !== lastProblem) deps.log.warn('kube_ca_unusable', { file: deps.file, reason, error, keeping: 'the previous CA bundle' })
      lastProblem = problem
      return false
    }
    lastProblem = undefined
    if (pem === current) return false
    current = pem
    deps.apply(pem)
    deps.log.info('kube_ca_reloaded', { file: deps.file, reason, certificates })
    return true
  }

  return {
    /** Re-reads the bundle now; true when it changed and the transport was rebuilt. */
    check,
    /** Checks every CA_CHECK_INTERVAL_MS until `signal` aborts. */
    async run(signal?: AbortSignal): Promise<void> {
      for (;;) {
        try {
          await deps.clock.sleep(CA_CHECK_INTERVAL_MS, signal)
        } catch {
          return
        }
        await check('interval')
      }
    },
  }
}
