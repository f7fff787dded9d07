/**
 * The bearer token, read from a file that kubelet rotates (an atomic `..data` symlink swap). Re-read by path,
 * as client-go does: when the cached copy is 50 s old (client-go's one-minute period less its 10 s leeway), and
 * at once after a 401. A re-read that fails (the file unreadable, or over its size limit: see files.ts) keeps the
 * last token read, which stays valid for a while (kubelet renews a projected token at 80% of its life), rather
 * than going unauthenticated mid-drain.
 */
import type { Clock } from '../clock.ts'

export const TOKEN_MAX_AGE_MS = 50_000

export interface TokenSource {
  /** The current token, or undefined when no read has ever found one (requests then go unauthenticated). */
  get(): Promise<string | undefined>
  /** Forget the cached token: the next get() re-reads the file. */
  invalidate(): void
}

export function createFileTokenSource(
  path: string,
  {
    clock,
    readFile,
    onError,
    maxAgeMs = TOKEN_MAX_AGE_MS,
  }: {
    clock: Clock
    readFile: (path: string) => Promise<string>
    onError?: (error: unknown) => void
    /** How long a read is trusted; 0: re-read on every get() (the hook token, so a rotation counts at once). */
    maxAgeMs?: number
  },
): TokenSource {
  let cached: { token: string | undefined; at: number } | undefined
  let lastGood: string | undefined
  return {
    async get() {
      if (cached && clock.now() - cached.at < maxAgeMs) return cached.token
      let token: string | undefined
      try {
        token = (await readFile(path)).trim() || undefined
      } catch (error) {
        onError?.(error)
        token = lastGood
      }
      if (token !== undefined) lastGood = token
      cached = { token, at: clock.now() }
      return token
    },
    invalidate() {
      cached = undefined
    },
  }
}

export const staticToken = (token: string | undefined): TokenSource => ({ get: async () => token, invalidate() {} })
