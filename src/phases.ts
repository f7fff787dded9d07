/** The names shared by the drain summary, the logs and the metric labels. */

export const PHASES = ['app', 'envoy', 'endpoints', 'settle'] as const
export type Phase = (typeof PHASES)[number]

export const OUTCOMES = ['completed', 'timeout'] as const
export type Outcome = (typeof OUTCOMES)[number]

export const TRIGGERS = ['hook', 'signal'] as const
export type Trigger = (typeof TRIGGERS)[number]

/**
 * How a phase ended. `skipped`: not configured. `failed`: the call failed (logged and counted, never fatal).
 * `cancelled`: the deadline or the release came first.
 */
export type PhaseStatus = 'ok' | 'failed' | 'skipped' | 'cancelled'
