// The cluster test tier (test/cluster/): each file starts its own real control plane (etcd, kube-apiserver,
// kube-controller-manager), so at most two files run at once on 2 cores, each in its own process (the control
// plane's process groups are killed when that process exits), with a long timeout for a busy machine.
//   npm run test:cluster                                  every file
//   npm run test:cluster -- test/cluster/drain.test.ts    one file
export default {
  files: ['test/cluster/**/*.test.ts'],
  extensions: { ts: 'module' },
  timeout: '3m',
  concurrency: 2,
  workerThreads: false,
}
