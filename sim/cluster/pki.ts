/**
 * The certificates of one test control plane, made per run with Debian's openssl in the run's directory: a CA, the
 * API server's serving certificate (loopback only), and client certificates. The API server takes a client
 * certificate's CN as the user and its O as the groups, so `system:masters` makes an admin that RBAC never
 * checks: for the harness and the controller-manager only, never for the sidecar (it gets a pod-bound token).
 * Plus one RSA key that signs and verifies service-account tokens.
 */
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export type Pki = {
  caFile: string
  caKey: string
  apiserver: KeyPair
  admin: KeyPair
  controllerManager: KeyPair
  /** Signs (and verifies) service-account tokens. */
  serviceAccountKey: string
}
export type KeyPair = { cert: string; key: string }

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir })
  } catch (error) {
    const e = error as { stderr?: string; code?: string }
    if (e.code === 'ENOENT')
      throw new Error('openssl not found: install the Debian package openssl (the test command does it when run as root)')
    throw new Error(`openssl ${args[0]} failed: ${e.stderr ?? String(error)}`)
  }
}

/** Issues a certificate signed by the CA in `dir`; `extensions` is an openssl extension file's text. */
async function issue(dir: string, name: string, subject: string, extensions: string): Promise<KeyPair> {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }
  await openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', pair.key, '-out', `${name}.csr`])
  await writeFile(join(dir, `${name}.ext`), extensions)
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    pair.cert,
    '-extfile',
    `${name}.ext`,
  ])
  return pair
}

/** `extraIps`: further addresses the API server's certificate is valid for (a relay into network namespaces). */
export async function makePki(dir: string, extraIps: string[] = []): Promise<Pki> {
  await openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=drain-coordinator-test-ca',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ])
  // One at a time: -CAcreateserial writes ca.srl, which parallel signings would race on.
  const apiserver = await issue(
    dir,
    'apiserver',
    '/CN=kube-apiserver',
    `subjectAltName=IP:127.0.0.1,DNS:localhost${extraIps.map((ip) => `,IP:${ip}`).join('')}\nextendedKeyUsage=serverAuth\n`,
  )
  const admin = await issue(dir, 'admin', '/O=system:masters/CN=test-admin', 'extendedKeyUsage=clientAuth\n')
  const controllerManager = await issue(dir, 'kcm', '/O=system:masters/CN=kcm', 'extendedKeyUsage=clientAuth\n')
  await openssl(dir, ['genrsa', '-out', 'sa.key', '2048'])
  return {
    caFile: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    apiserver,
    admin,
    controllerManager,
    serviceAccountKey: join(dir, 'sa.key'),
  }
}

/** A kubeconfig that logs in with a client certificate. */
export async function writeKubeconfig(path: string, server: string, caFile: string, user: KeyPair): Promise<string> {
  // JSON is YAML: no YAML library needed.
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: 'user', user: { 'client-certificate': user.cert, 'client-key': user.key } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: 'user' } }],
    'current-context': 'test',
  }
  await writeFile(path, JSON.stringify(config, null, 2))
  return path
}
