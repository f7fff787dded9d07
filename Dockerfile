# syntax=docker/dockerfile:1
# drain-coordinator image: the bundle (a few ES modules) and its V8 compile cache on a distroless Node.js 24 runtime.
# Build with image/build.mjs (multi-arch, tags and labels from package.json and git); by hand:
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .

# The bundle is plain JavaScript, the same bytes on every architecture: build it once, natively, on the build
# machine's platform ($BUILDPLATFORM) instead of under QEMU for each target platform.
FROM --platform=$BUILDPLATFORM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/bundle.mjs scripts/
COPY src/ src/
# tsc type-checks src/ only (tsconfig.build.json) before esbuild bundles; tests, scripts and sim/ are not in the
# build context, and `npm run build` (which checks them too) is for development.
RUN npm run build:bundle

# The compile cache (README, "Footprint"): V8's code for what start-up runs, made by the runtime image's own Node
# binary (no shell needed: RUN in exec form) as the runtime user with the CMD's Node flags, since Node keys the cache
# by its version, the V8 flags and the user id and silently ignores a cache that does not match. Under QEMU for a
# foreign platform this runs emulated, once, for a few seconds.
FROM gcr.io/distroless/nodejs24-debian12:nonroot AS compile-cache
COPY --from=build /src/dist/ /app/
COPY image/warm-compile-cache.mjs /warm/
USER 65532:65532
ENV NODE_COMPILE_CACHE=/home/nonroot/compile-cache
RUN ["/nodejs/bin/node", "--disable-sigusr1", "--max-semi-space-size=1", "--max-old-space-size=96", "/warm/warm-compile-cache.mjs", "/app/drain-coordinator.mjs"]

# Runtime: gcr.io/distroless/nodejs24-debian12, tag :nonroot. Distroless has Node.js and its libraries and nothing
# else: no shell, no package manager, no npm. Pinned by tag rather than digest on purpose: the tag follows Debian
# 12 security updates and Node.js 24 patch releases, so a rebuild picks them up; pin the digest as well
# (FROM ...:nonroot@sha256:...) when you need bit-for-bit reproducible builds, and let a bot bump it.
FROM gcr.io/distroless/nodejs24-debian12:nonroot
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/drain-coordinator/drain-coordinator
LABEL org.opencontainers.image.title="drain-coordinator" \
      org.opencontainers.image.description="Sidecar that holds a pod's preStop hook until its endpoint has left every EndpointSlice, then lets SIGTERM through." \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# Only the bundle (dist/: the entry, main.mjs and the chunks it loads later): no node_modules, no package.json (the
# version is inlined at build time). Then the compile cache. Both read-only, 0555 rather than 0444: BuildKit (0.21
# and later) applies --chmod to the directories it copies and creates too, and a directory without x cannot be
# entered, so 0444 would leave /app unusable for user 65532. Node, finding it cannot write the cache, just reads.
COPY --from=build --chown=0:0 --chmod=0555 /src/dist/ /app/
COPY --from=compile-cache --chown=0:0 --chmod=0555 /home/nonroot/compile-cache/ /app/compile-cache/
ENV NODE_COMPILE_CACHE=/app/compile-cache
# 65532 is distroless's "nonroot" user; numeric so that runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
WORKDIR /app
EXPOSE 8099
# No HEALTHCHECK: Kubernetes probes (/healthz, /ready) do that job. The base image's ENTRYPOINT is the node binary.
# The Node flags: scripts/node-flags.mjs says why each is there, README "Footprint" and "Memory" what they gain;
# the compile-cache stage above runs with the same ones. The flags that turn V8's optimizing compilers off are set
# by the sidecar itself once it listens (src/v8-flags.ts), since on this line they would slow every start-up.
# --disable-sigusr1 blocks SIGUSR1 from the process's first instant, so it can never open Node's inspector.
CMD ["--disable-sigusr1", "--max-semi-space-size=1", "--max-old-space-size=96", "/app/drain-coordinator.mjs"]
