// The Node flags the image starts the sidecar with (the Dockerfile's CMD). The footprint bench runs the bundle
// with the same ones, and test/image.test.ts checks that the CMD carries each of them. What each gains is
// measured in README, "Footprint":
//   --max-semi-space-size=1  young generation capped at 1 MB per semi-space (V8 grows it to 16 MB under a burst
//                            of allocation, such as a run of /metrics scrapes, and keeps it)
//   --no-maglev, --no-opt    no optimizing compilers (Sparkplug, the baseline compiler, stays): their code and
//                            compile-time memory were most of the RSS growth after 1000 scrapes. They cost about
//                            30 ms more CPU before the port opens: memory headroom protects a drain, that does not
// No --max-old-space-size: a heap limit below the container's memory limit would only add a second way to crash
// mid-drain, and Node already sizes the heap from the container's limit.
export const IMAGE_NODE_FLAGS = ['--max-semi-space-size=1', '--no-maglev', '--no-opt']
