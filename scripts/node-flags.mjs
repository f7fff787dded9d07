// The Node flags the image starts the sidecar with (the Dockerfile's CMD, and its compile-cache stage, which must
// match: test/image.test.ts checks the CMD carries each, test/image-compile-cache.test.ts that the stage's are
// the CMD's). The black-box tests, the memory bench and the footprint bench
// run the bundle with the same ones, so they measure the process as it ships. What each gains is measured in
// README, "Footprint" and "Memory":
//   --disable-sigusr1        SIGUSR1 never opens Node's inspector: blocked from the process's first instant
//   --max-semi-space-size=1  young generation capped at 1 MB per semi-space (V8 grows it to 16 MB under a burst
//                            of allocation, such as a run of /metrics scrapes, and keeps it)
//   --max-old-space-size=96  V8 sizes its heap from the host's (or the cgroup's) memory and grows it lazily; a
//                            budget well under the manifests' 192Mi limit makes it collect instead, so RSS stays
//                            under the limit with every API answer bounded (src/kube/limits.ts) far below 96 MB
// Neither heap flag changes V8's flag hash, so Node still uses the code cache it ships for its own modules. The
// flags that do (no optimizing compilers, no WebAssembly tier-up) are set by the sidecar once it listens:
// src/v8-flags.ts says why and which.
export const IMAGE_NODE_FLAGS = ['--disable-sigusr1', '--max-semi-space-size=1', '--max-old-space-size=96']
