/** The running version, from package.json (inlined by the bundler, so the image needs no package.json). */
import pkg from '../package.json' with { type: 'json' }

export const VERSION: string = pkg.version
export const USER_AGENT = `drain-coordinator/${VERSION}`
