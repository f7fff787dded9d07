/**
 * What a drain says in its Kubernetes Events: DrainStarted (Normal), then DrainCompleted (Normal) or DrainTimedOut
 * (Warning) with the phase durations, the traffic lag and the deadline's source. Pure: summaries in, text out.
 */
import type { EventType } from './kube/events.ts'
import type { DrainSummary, PhaseReport } from './drain.ts'
import { PHASES, type Trigger } from './phases.ts'

export type DrainEvent = { type: EventType; reason: 'DrainStarted' | 'DrainCompleted' | 'DrainTimedOut'; message: string }

export function drainStartedEvent(trigger: Trigger): DrainEvent {
  const by = trigger === 'hook' ? 'the preStop hook' : 'a signal (SIGTERM or SIGINT)'
  return {
    type: 'Normal',
    reason: 'DrainStarted',
    message: `Drain started by ${by}; readiness is off, waiting for the endpoint to leave every EndpointSlice`,
  }
}

export function drainFinishedEvent(summary: DrainSummary): DrainEvent {
  const completed = summary.outcome === 'completed'
  const phases = PHASES.map((name) => `${name} ${describePhase(summary.phases[name])}`).join(', ')
  const lag = summary.phases.settle.trafficLagSeconds
  const deadline = `${summary.deadline.source} ${summary.deadline.seconds}s`
  const message = [
    completed
      ? `Drain completed in ${summary.durationSeconds}s`
      : `Drain hit its deadline after ${summary.durationSeconds}s: released without proof that traffic had moved away`,
    `phases: ${phases}`,
    `traffic lag: ${typeof lag === 'number' ? `${lag}s` : 'not measured'}`,
    `deadline: ${deadline}`,
  ].join('; ')
  return { type: completed ? 'Normal' : 'Warning', reason: completed ? 'DrainCompleted' : 'DrainTimedOut', message }
}

function describePhase(report: PhaseReport): string {
  const duration = report.durationSeconds === undefined ? '' : ` ${report.durationSeconds}s`
  const endedBy = typeof report.endedBy === 'string' ? ` (${report.endedBy})` : ''
  return `${report.status}${duration}${endedBy}`
}
