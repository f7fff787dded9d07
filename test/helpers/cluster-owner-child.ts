/**
 * A test run that gets killed: starts the real control plane exactly as a cluster test file does (startCluster,
 * under the TMPDIR it is given), prints one JSON line with its directory and its components' pids, then waits to be
 * SIGKILLed (test/cluster/leftovers.test.ts).
 */
import { startCluster } from '../../sim/cluster/cluster.ts'

const cluster = await startCluster()
const components = [cluster.etcd, cluster.apiserver, cluster.controllerManager].map((c) => ({ name: c.name, pid: c.pid }))
process.stdout.write(JSON.stringify({ dir: cluster.dir, components }) + '\n')
setInterval(() => {}, 60_000)
