/**
 * Label selectors as the API server parses them (equality- and set-based): `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
 * `a notin (x,y)`, `a`, `!a`, joined by commas. Used by the fake API server to filter LIST and WATCH.
 */

type Requirement = (labels: Record<string, string>) => boolean

export function parseLabelSelector(selector: string): Requirement {
  const requirements: Requirement[] = []
  for (const clause of splitClauses(selector)) {
    const text = clause.trim()
    if (text === '') continue
    let match: RegExpExecArray | null
    if ((match = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(text))) {
      const [, key, op, list] = match as unknown as [string, string, string, string]
      const values = new Set(list.split(',').map((v) => v.trim()))
      requirements.push(op === 'in' ? (l) => key in l && values.has(l[key]!) : (l) => !(key in l) || !values.has(l[key]!))
    } else if ((match = /^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/.exec(text))) {
      const [, key, op, value] = match as unknown as [string, string, string, string]
      requirements.push(op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value)
    } else if ((match = /^!([\w./-]+)$/.exec(text))) {
      const key = match[1]!
      requirements.push((l) => !(key in l))
    } else if ((match = /^([\w./-]+)$/.exec(text))) {
      const key = match[1]!
      requirements.push((l) => key in l)
    } else {
      throw new Error(`unable to parse requirement: ${JSON.stringify(text)}`)
    }
  }
  return (labels) => requirements.every((requirement) => requirement(labels))
}

/** Commas inside `in (...)` do not separate clauses. */
function splitClauses(selector: string): string[] {
  const clauses: string[] = []
  let depth = 0
  let current = ''
  for (const char of selector) {
    if (char === '(') depth++
    if (char === ')') depth--
    if (char === ',' && depth === 0) {
      clauses.push(current)
      current = ''
    } else current += char
  }
  clauses.push(current)
  return clauses
}
