/**
 * Optional protection of /prestop: with DRAIN_HOOK_TOKEN (or a mounted DRAIN_HOOK_TOKEN_FILE) set, a hook must
 * carry `X-Drain-Token` with that value, which kubelet sends from `httpGet.httpHeaders`. Compared in constant
 * time (both sides hashed first, so their lengths leak nothing either).
 */
import { createHash, timingSafeEqual } from 'node:crypto'

export const HOOK_TOKEN_HEADER = 'x-drain-token'

export type HookTokenSource = () => Promise<string | undefined>

export function tokensMatch(expected: string, presented: string | undefined): boolean {
  if (presented === undefined) return false
  const digest = (value: string) => createHash('sha256').update(value).digest()
  return timingSafeEqual(digest(expected), digest(presented))
}
