/**
 * prom-client's classes, each from its own file. The package's index also loads its Pushgateway (node:https, so
 * tls and crypto, and zlib) and its cluster aggregator (node:cluster, child_process), which the sidecar never uses
 * and which cost about 3 ms of every start-up (README, "Footprint"). prom-client has no `exports` map, so these
 * paths are part of what it publishes; the version is pinned, and the tests exercise each class.
 *
 * Its default (process) metrics are not here: main.ts loads them with `import()` once the port is open.
 */
import Counter from 'prom-client/lib/counter.js'
import Gauge from 'prom-client/lib/gauge.js'
import Histogram from 'prom-client/lib/histogram.js'
import Registry from 'prom-client/lib/registry.js'

export { Counter, Gauge, Histogram, Registry }
