/**
 * Kubernetes YAML streams as inject reads and writes them: parsed with the `yaml` package into documents whose
 * nodes keep their comments, and written back so that a document inject did not change comes out byte for byte
 * as it came in, and a changed one keeps its comments, key order and the text around it.
 */
import { Document, isMap, isSeq, parseAllDocuments, type YAMLMap } from 'yaml'

/** One input: a file's name (or `<stdin>`) and its text. */
export type Source = { name: string; text: string }

export class InjectInputError extends Error {
  override name = 'InjectInputError'
}

export type Stream = { source: Source; docs: Document.Parsed[] }

// Kubernetes reads YAML 1.1 (sigs.k8s.io/yaml): `0444` is octal, `on` a boolean.
const PARSE_OPTIONS = { version: '1.1', keepSourceTokens: false } as const

export function parseStream(source: Source): Stream {
  const docs = parseAllDocuments(source.text, PARSE_OPTIONS)
  if (!Array.isArray(docs)) return { source, docs: [] }
  for (const doc of docs) {
    const error = doc.errors[0]
    if (error !== undefined) {
      const where = error.linePos?.[0]
      throw new InjectInputError(
        `${source.name}${where ? `:${where.line}:${where.col}` : ''}: not valid YAML: ${error.message.split('\n')[0]}`,
      )
    }
  }
  return { source, docs }
}

/** Every object of a document: the document's root map, or each item of a `kind: List` (or `*List`) root. */
export function objectsOf(doc: Document.Parsed): YAMLMap[] {
  const root = doc.contents
  if (!isMap(root)) return []
  const kind: unknown = root.get('kind')
  const items: unknown = root.get('items')
  if (typeof kind === 'string' && kind.endsWith('List') && isSeq(items)) return items.items.filter((item): item is YAMLMap => isMap(item))
  return [root as YAMLMap]
}

/**
 * Writes the streams back. Unchanged documents are copied from their source text; a changed document's root is
 * printed anew between the source text before it (document marker, leading comments) and after it.
 */
export function printStreams(streams: readonly Stream[], changed: ReadonlySet<Document>, added: readonly object[]): string {
  const parts: string[] = []
  for (const { source, docs } of streams) {
    const text = source.text
    let from = 0
    let part = ''
    for (const doc of docs) {
      const contents = doc.contents
      if (changed.has(doc) && contents !== null && contents.range) {
        part +=
          text.slice(from, contents.range[0]) +
          printRoot(doc, text.slice(doc.range[0], doc.range[2])) +
          text.slice(contents.range[2], doc.range[2])
      } else {
        part += text.slice(from, doc.range[2])
      }
      from = doc.range[2]
    }
    part += text.slice(from)
    if (part !== '') parts.push(part)
  }
  for (const object of added) parts.push(new Document(object, PARSE_OPTIONS).toString({ lineWidth: 0 }))
  // Between two inputs (or an input and an added object) a document marker, on a line of its own.
  return parts.reduce((out, part, index) => {
    if (index === 0) return part
    const sep = out.endsWith('\n') ? '' : '\n'
    return out + sep + (/^---(\s|$)/.test(part) ? '' : '---\n') + part
  }, '')
}

function printRoot(doc: Document.Parsed, sourceText: string): string {
  const out = new Document(doc.contents, PARSE_OPTIONS).toString({
    lineWidth: 0,
    flowCollectionPadding: false,
    // Follow the source: `key:\n- item` (kubectl, Helm charts) or `key:\n  - item`.
    indentSeq: !/^( *)[^\s#-][^\n]*:[ \t]*\n\1- /m.test(sourceText),
  })
  // Comments before the root's first key are in the source text copied before it (the parser hangs them on the
  // root or on its first key, depending on blank lines), so the printed ones go.
  return out.replace(/^(?:[ \t]*(?:#[^\n]*)?\n)+/, '')
}
