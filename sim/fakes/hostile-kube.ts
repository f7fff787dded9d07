/**
 * Hostile answers a broken or malicious API server can give, as faults for the fake API server (fake-kube.ts),
 * with the pod's slice and sidecar: shared by the fault tests (test/faults-kube-hostile.test.ts,
 * test/faults-kube.test.ts) and the memory bench (scripts/bench-memory.ts), so both measure the same thing. Each
 * answers every request of one verb, for good.
 */
import { gzipSync } from 'node:zlib'
import type { FakeKube, Fault } from './fake-kube.ts'
import { endpointSlice, READY } from './fixtures.ts'
import { startSidecarAgainst } from './sidecar-process.ts'

const MiB = 1024 * 1024

/** The pod (web-1, uid-web-1, at `podIp`) in its Service's slice beside one other ready pod, in `conditions`. */
export const podSlice = (namespace: string, podIp: string, conditions: object) =>
  endpointSlice({
    name: 'web-abcde',
    service: 'web',
    namespace,
    endpoints: [
      { ip: podIp, podName: 'web-1', uid: 'uid-web-1', ...conditions },
      { ip: '10.0.0.8', podName: 'web-2', ...READY },
    ],
  })

/**
 * The built sidecar of the pod in podSlice against `kube`, its drain held to `timeoutMs` at most, with a short
 * settle; `env` adds to or overrides that.
 */
export const startPodSidecar = (kube: FakeKube, namespace: string, podIp: string, timeoutMs: number, env: Record<string, string> = {}) =>
  startSidecarAgainst(
    kube,
    { namespace, name: 'web-1', uid: 'uid-web-1', ip: podIp },
    { DRAIN_TIMEOUT: `${timeoutMs}ms`, DRAIN_SETTLE: '100ms', ...env },
  )

/** A LIST body whose one item is the pod's slice named web-abcde, with labels and endpoints as raw JSON text. */
export const listWithPodSlice = (namespace: string, labelsJson: string, endpointsJson: string) =>
  `{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"5000"},"items":[{"metadata":{"name":"web-abcde","namespace":"${namespace}","labels":${labelsJson}},"addressType":"IPv4","endpoints":${endpointsJson}}]}`

export type Hostile = { name: string; verb: 'list' | 'watch'; fault: (kube: FakeKube, podIp: string) => Fault }

export const HOSTILE: Hostile[] = [
  {
    name: 'watch line of 20 MB',
    verb: 'watch',
    fault: () => ({
      kind: 'flood',
      prefix: '{"type":"MODIFIED","object":{"kind":"EndpointSlice","metadata":{"name":"web-abcde"},"endpoints":null,"x":"',
      bytes: 20 * MiB,
      suffix: '"}}\n',
      end: false,
    }),
  },
  {
    name: 'watch stream without newline',
    verb: 'watch',
    fault: () => ({
      kind: 'flood',
      prefix: '{"type":"MODIFIED","object":{"metadata":{"name":"web-abcde"},"x":"',
      bytes: 2 ** 40,
      suffix: '',
      end: false,
      chunkBytes: 16 * 1024,
    }),
  },
  {
    name: 'endless LIST pages',
    verb: 'list',
    fault: (_kube, podIp) => ({ kind: 'endless-pages', slices: 2, endpointsPerSlice: 1_000, podIp }),
  },
  {
    name: 'LIST page of 100 MB',
    verb: 'list',
    fault: () => ({
      kind: 'flood',
      prefix: '{"kind":"EndpointSliceList","metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"other"},"endpoints":null,"x":"',
      bytes: 100 * MiB,
      suffix: '"}]}',
      end: true,
    }),
  },
  {
    name: 'gzip inflating to 1 GB',
    verb: 'list',
    fault: () => {
      const member = gzipSync(Buffer.alloc(16 * MiB, 0x20))
      return {
        kind: 'gzip',
        body: Buffer.concat([gzipSync('{"kind":"EndpointSliceList","items":['), ...Array<Buffer>(64).fill(member), gzipSync(']}')]),
      }
    },
  },
  {
    name: 'redirect to plain http',
    verb: 'list',
    fault: (kube) => ({
      kind: 'status',
      status: 307,
      body: '',
      headers: { location: `http://127.0.0.1:9/apis/discovery.k8s.io/v1/namespaces/${kube.namespace}/endpointslices` },
    }),
  },
  {
    name: 'nesting 100,000 deep',
    verb: 'list',
    fault: (kube) => ({
      kind: 'raw',
      body: listWithPodSlice(
        kube.namespace,
        `{"kubernetes.io/service-name":"web","app":${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
        '[]',
      ),
    }),
  },
  {
    name: 'wrong types (endpoints: "x")',
    verb: 'list',
    fault: (kube) => ({ kind: 'raw', body: listWithPodSlice(kube.namespace, '{"kubernetes.io/service-name":"web"}', '"x"') }),
  },
]
