/**
 * The last resort (src/last-resort.ts): an error nothing caught is logged and counted, and nothing is thrown back,
 * so Node does not end the process. The black box in test/sidecar.test.ts shows a held hook surviving both kinds.
 */
import { EventEmitter } from 'node:events'
import test from 'ava'
import { installLastResort, type UnexpectedErrorKind } from '../src/last-resort.ts'
import { captureLog } from './helpers/capture-log.ts'

test('an uncaught exception and an unhandled rejection are each logged at error level with the error, and counted', (t) => {
  const emitter = new EventEmitter()
  const log = captureLog()
  const counted: UnexpectedErrorKind[] = []
  installLastResort(emitter, { log, count: (kind) => counted.push(kind) })
  emitter.emit('uncaughtException', new TypeError('x is not a function'))
  emitter.emit('unhandledRejection', 'a bare string')
  t.deepEqual(counted, ['uncaughtException', 'unhandledRejection'])
  t.like(log.lines[0], {
    level: 'error',
    event: 'unexpected_error',
    kind: 'uncaughtException',
    error: { name: 'TypeError', message: 'x is not a function' },
  })
  t.like(log.lines[1], { level: 'error', event: 'unexpected_error', kind: 'unhandledRejection', stack: null })
  t.regex(String(log.lines[0]!.stack), /^\s+at /, 'the first frames, for the bug report')
  t.is(log.lines.length, 2)
})

test('the reporter it returns reports the same way, for an error caught where it must not be rethrown', (t) => {
  const emitter = new EventEmitter()
  const log = captureLog()
  const counted: UnexpectedErrorKind[] = []
  const report = installLastResort(emitter, { log, count: (kind) => counted.push(kind) })
  report('uncaughtException', new Error('after listen'))
  t.deepEqual(counted, ['uncaughtException'])
  t.like(log.lines[0], { event: 'unexpected_error', kind: 'uncaughtException', error: { message: 'after listen' } })
})

test('a counter that throws does not turn the report into a new uncaught exception', (t) => {
  const emitter = new EventEmitter()
  const log = captureLog()
  installLastResort(emitter, {
    log,
    count: () => {
      throw new Error('registry broken')
    },
  })
  t.notThrows(() => emitter.emit('uncaughtException', new Error('first')))
  t.like(log.lines[0], { event: 'unexpected_error', error: { message: 'first' } })
})
