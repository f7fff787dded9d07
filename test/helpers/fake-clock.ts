/**
 * A clock tests move by hand (after k8s.io/utils/clock/testing.FakeClock): `advance` wakes sleepers in deadline
 * order and lets each continuation run before the next, `settle` lets the code under test run without moving time.
 */
import type { Clock } from '../../src/clock.ts'

type Sleeper = { at: number; wake: () => void }

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

export class FakeClock implements Clock {
  #now = 0
  #sleepers: Sleeper[] = []
  readonly #epoch = Date.parse('2026-01-01T00:00:00Z')

  now(): number {
    return this.#now
  }

  wallTime(): Date {
    return new Date(this.#epoch + this.#now)
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason)
    return new Promise((resolve, reject) => {
      const sleeper: Sleeper = {
        at: this.#now + Math.max(0, ms),
        wake: () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
      }
      const onAbort = () => {
        this.#sleepers = this.#sleepers.filter((s) => s !== sleeper)
        reject(signal!.reason)
      }
      this.#sleepers.push(sleeper)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Lets pending promise chains (and in-memory I/O) run without moving time. */
  async settle(turns = 5): Promise<void> {
    for (let i = 0; i < turns; i++) await nextTurn()
  }

  /** Moves time forward by `ms`, waking every sleeper due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms
    for (;;) {
      await this.settle()
      this.#sleepers.sort((a, b) => a.at - b.at)
      const next = this.#sleepers[0]
      if (!next || next.at > target) break
      this.#sleepers.shift()
      this.#now = next.at
      next.wake()
    }
    this.#now = target
    await this.settle()
  }
}
