/**
 * A test run of the cluster tier as test/cluster/leftovers.test.ts needs one: starts the real control plane exactly
 * as a cluster test file does (startCluster, under the TMPDIR it is given), prints one JSON line with its directory
 * and its components' pids, then waits to be SIGKILLed; or, with the argument `keep-logs`, stops the plane keeping
 * its logs (as a file with a failed test does) and exits.
 */
import { startCluster } from '../../sim/cluster/cluster.ts'

const cluster = await startCluster()
const components = [cluster.etcd, cluster.apiserver, cluster.controllerManager].map((c) => ({ name: c.name, pid: c.pid }))
process.stdout.write(JSON.stringify({ dir: cluster.dir, components }) + '\n')
if (process.argv[2] === 'keep-logs') await cluster.stop({ keepLogs: true })
else setInterval(() => {}, 60_000)
