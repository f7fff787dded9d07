// Run once by the Dockerfile's compile-cache stage, by the runtime image's own Node binary, as the runtime user,
// with the CMD's Node flags: it starts the sidecar so that V8 compiles what start-up runs, lets src/main.ts write
// NODE_COMPILE_CACHE (its flushCompileCache right after listening), and exits. The runtime image ships that
// cache, so every pod of a rollout starts with its modules already compiled (README, "Footprint").
//
// Node keys the cache by its own version, the V8 flags, the user id and each module's path and content: a
// different Node, other flags, another runAsUser or another path make it a silent miss (a start-up as without
// the cache), never an error. test/image-compile-cache.test.ts checks that this stage and the CMD agree.
import { createServer } from 'node:net'

// A free loopback port, not a fixed one: a multi-arch build may run this stage for two platforms at once on a
// builder whose RUN steps share the host's network.
process.env.DRAIN_HOST ??= '127.0.0.1'
process.env.DRAIN_PORT ??= await new Promise((resolve, reject) => {
  const probe = createServer().once('error', reject)
  probe.listen(0, '127.0.0.1', () => {
    const { port } = probe.address()
    probe.close(() => resolve(String(port)))
  })
})
// No API server, whatever the builder's environment holds (a builder running in a pod may pass the cluster's
// KUBERNETES_SERVICE_* on): a build must never call a cluster. The cache then lacks what only an in-cluster
// start-up compiles (the CA read, the API client's set-up), which costs those a few milliseconds, nothing else.
for (const name of ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT', 'DRAIN_KUBE_API_URL']) delete process.env[name]
// The entry to start (the Dockerfile passes /app/drain-coordinator.mjs): the cache is keyed by each module's path,
// so it must be where the runtime image runs it. The import resolves once the sidecar listens and has flushed
// the cache (main.mjs awaits its own start-up).
const entry = process.argv[2]
if (!entry?.startsWith('/')) throw new Error(`usage: warm-compile-cache.mjs /absolute/path/to/drain-coordinator.mjs (got ${entry})`)
await import(entry)
process.exit(0)
