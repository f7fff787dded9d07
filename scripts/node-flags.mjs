// The Node flags the image starts the sidecar with (Dockerfile CMD); the footprint bench runs the bundle with
// the same ones, and test/image.test.ts checks that the Dockerfile says the same.
export const IMAGE_NODE_FLAGS = []
