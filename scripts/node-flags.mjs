// The Node flags the image starts the sidecar with (the Dockerfile's CMD; test/image.test.ts checks the CMD carries
// each). The black-box tests, the memory bench and the footprint bench run the bundle with the same ones, so they
// measure the process as it ships. What each gains is measured in README, "Footprint" and "Memory":
//   --disable-sigusr1        SIGUSR1 never opens Node's inspector: blocked from the process's first instant
//   --max-semi-space-size=1  young generation capped at 1 MB per semi-space (V8 grows it to 16 MB under a burst
//                            of allocation, such as a run of /metrics scrapes, and keeps it)
//   --no-maglev, --no-opt    no optimizing JavaScript compilers (Sparkplug, the baseline compiler, stays): their
//                            code and compile-time memory were most of the RSS growth after 1000 scrapes. They cost
//                            about 30 ms more CPU before the port opens: memory headroom protects a drain, that does not
//   --liftoff-only           no optimizing re-compile of undici's WebAssembly HTTP parser (a one-off spike of about
//                            20 MB for a parser that handles a few requests per drain)
//   --max-old-space-size=96  V8 sizes its heap from the host's (or the cgroup's) memory and grows it lazily; a
//                            budget well under the manifests' 192Mi limit makes it collect instead, so RSS stays
//                            under the limit with every API answer bounded (src/kube/limits.ts) far below 96 MB
export const IMAGE_NODE_FLAGS = [
  '--disable-sigusr1',
  '--max-semi-space-size=1',
  '--no-maglev',
  '--no-opt',
  '--liftoff-only',
  '--max-old-space-size=96',
]
