import test from 'ava'
import { parseDuration } from '../src/duration.ts'

const accepted: Array<[string, number]> = [
  ['500ms', 500],
  ['5s', 5_000],
  ['2m', 120_000],
  ['1m30s', 90_000],
  ['1h', 3_600_000],
  ['1.5s', 1_500],
  ['5', 5_000],
  ['0.25', 250],
  ['0s', 0],
  [' 20s ', 20_000],
]

for (const [text, ms] of accepted) {
  test(`parses ${JSON.stringify(text)} as ${ms} ms`, (t) => {
    t.is(parseDuration(text), ms)
  })
}

for (const text of ['', ' ', '5x', '-1s', '1.5.0', 's', 'ms', '5 s', '1s1m', '1m1m', 'Infinity', '0x10', '1e3']) {
  test(`rejects ${JSON.stringify(text)}`, (t) => {
    t.is(parseDuration(text), undefined)
  })
}
