#!/usr/bin/env zx
// Builds and pushes the multi-arch image: build.mjs with --push (same options, --dry-run included).
//   node image/push.mjs --image ghcr.io/acme/drain-coordinator [--dry-run]
import { main } from './build.mjs'

process.exitCode = await main(process.argv.slice(2), { forcePush: true })
