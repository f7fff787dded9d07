/**
 * What a simulated rollout (sim/scenario.ts) is asked to do and what it reports: the strategies, the control-plane
 * and load-balancer conditions, the defaults both simulators share (sim/data-plane.ts runs the same rollout on
 * kube-proxy), the options and the result.
 */
import type { Termination } from './kubelet.ts'
import type { LoadResult } from './load.ts'
import type { NetworkMode } from './netns.ts'

export const STRATEGIES = ['no-prestop', 'sleep', 'dc-watch', 'dc-poll', 'dc-quiet'] as const
export type Strategy = (typeof STRATEGIES)[number]

/**
 * The rollout both simulators run unless told otherwise: this one, and sim/data-plane.ts's on kube-proxy, so their
 * figures compare.
 */
export const ROLLOUT_DEFAULTS = {
  replicas: 3,
  ratePerSecond: 200,
  workMs: 5,
  graceMs: 30_000,
  sleepMs: 5_000,
  settleMs: 2_000,
  warmupMs: 1_500,
  quietPeriodMs: 1_000,
  appKeepAlive: 'off' as 'off' | 'on',
}
/** dc-quiet's DRAIN_SETTLE: the gate's upper bound, not a wait, as long as the slowest data plane it must cover. */
export const QUIET_GATE_SETTLE_MS = 20_000

export type Condition = { name: string; description: string; controllerDelayMs: number; lbLagMs: number }

export const CONDITIONS = {
  normal: {
    name: 'normal',
    description: 'endpoint controller reacts in 100 ms, load balancer lags 1 s',
    controllerDelayMs: 100,
    lbLagMs: 1_000,
  },
  'slow-control-plane': {
    name: 'slow-control-plane',
    description: 'endpoint controller reacts after 6 s (overloaded API server), load balancer lags 1 s',
    controllerDelayMs: 6_000,
    lbLagMs: 1_000,
  },
  'slow-load-balancer': {
    name: 'slow-load-balancer',
    description: 'endpoint controller reacts in 100 ms, load balancer lags 8 s (longer than the sleep)',
    controllerDelayMs: 100,
    lbLagMs: 8_000,
  },
} as const satisfies Record<string, Condition>
export type ConditionName = keyof typeof CONDITIONS

export type ScenarioOptions = {
  strategy: Strategy
  condition: Condition
  replicas?: number
  /** How many of the replicas the rollout replaces. */
  rollout?: number
  ratePerSecond?: number
  workMs?: number
  graceMs?: number
  /** The fixed preStop sleep of the `sleep` strategy. */
  sleepMs?: number
  settleMs?: number
  drainTimeoutMs?: number
  pollIntervalMs?: number
  warmupMs?: number
  /** Time between one old pod's deletion and the next new pod's readiness. */
  rolloutGapMs?: number
  /** Give the sidecars a fake Envoy admin API (DRAIN_ENVOY_ADMIN_URL). */
  envoy?: boolean
  /** Probe each draining sidecar's /ready every 50 ms, for the timeline. */
  probeReady?: boolean
  /**
   * On loopback (not root, or `network: 'loopback'`): the pods' address prefix, e.g. '127.0.1' → old pods 127.0.1.10+,
   * new pods 127.0.1.110+. As network namespaces the prefix is the run's own 198.18.<k>.
   */
  addressPrefix?: string
  /** 'auto' (default): pods as network namespaces when root, loopback otherwise. */
  network?: 'auto' | 'loopback'
  /** dc-quiet: DRAIN_QUIET_PERIOD. */
  quietPeriodMs?: number
  /** What the app does on its shutdown URL: 'off' stops keeping connections alive, 'on' changes nothing. */
  appKeepAlive?: 'off' | 'on'
  /** Each pod serves on its own port (its own EndpointSlice); on by default for dc-quiet. */
  perPodPorts?: boolean
}

export type TimelineEntry = { at: number; source: string; event: string; pod?: string; detail?: string }

export type ScenarioResult = {
  strategy: Strategy
  condition: string
  /** Where the pods ran: their own network namespaces, or loopback addresses in this machine's namespace. */
  network: NetworkMode
  options: Required<Omit<ScenarioOptions, 'condition' | 'strategy'>> & { controllerDelayMs: number; lbLagMs: number }
  load: Omit<LoadResult, 'failures'> & {
    firstFailureAt: number | undefined
    lastFailureAt: number | undefined
    details: Record<string, number>
  }
  terminations: Termination[]
  hookHoldMs: { median: number | undefined; max: number | undefined; values: number[] }
  deletionToExitMs: { median: number | undefined; max: number | undefined; values: number[] }
  /** LIST and WATCH requests the sidecars made (the endpoint waits), and other requests per sidecar (start-up checks). */
  apiRequests: { total: number; perDrain: number; list: number; watch: number; startupPerPod: number }
  /** Outcome and phases each sidecar reported in its drain_finished log line. */
  drains: Array<{ pod: string; outcome: unknown; endpoints: unknown; settle: Record<string, unknown> | undefined }>
  /** Requests that reached an old pod's app after its SIGTERM (the app counts them): what the hold missed. */
  arrivedAfterSigterm: number
  timeline: TimelineEntry[]
  startedAt: number
  firstDeletionAt: number | undefined
}
