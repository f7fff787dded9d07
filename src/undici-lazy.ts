/**
 * The parts of undici that transport.ts uses, as a module of their own: transport.ts imports this one dynamically,
 * so the bundle puts undici (1.3 MB of source) in a chunk of its own that Node reads and compiles on the first
 * outgoing request, not at start-up (scripts/bundle.mjs, README "Footprint"). A dynamic import of undici itself
 * would give the split bundle only a default export (undici is CommonJS); re-exporting by name keeps the names.
 */
export { Agent, buildConnector, fetch } from 'undici'
