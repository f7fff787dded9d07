/**
 * Files the sidecar reads while it runs: the Kubernetes bearer token, the API server's CA bundle and the hook
 * token. Like transport.ts for the network, this is an edge: the rest of src/ is handed a read function. Every
 * read is bounded, so a wrong mount (a log file, a device, a bundle gone wild) is one clear error, never a
 * multi-megabyte Authorization header or a process that runs out of memory.
 */
import { open } from 'node:fs/promises'
import { DrainCoordinatorError } from './errors.ts'

/**
 * A projected service-account token is a JWT of about 1 KB, a hook token a few dozen bytes; 16 KiB is also the
 * header size Node's HTTP server accepts, so a larger token could not be sent anyway. A CA bundle holds a few
 * certificates of 1 to 2 KB; Debian's whole public-root bundle is about 220 KB.
 */
export const FILE_LIMITS = Object.freeze({ token: 16 * 1024, caBundle: 1024 * 1024 })

export class FileTooLargeError extends DrainCoordinatorError {
  override name = 'FileTooLargeError'
  readonly path: string
  readonly bytes: number
  readonly limitBytes: number
  constructor(path: string, bytes: number, limitBytes: number, what: string) {
    super('FILE_TOO_LARGE', `${what} ${path} is ${bytes} bytes, over the limit of ${limitBytes} bytes`)
    this.path = path
    this.bytes = bytes
    this.limitBytes = limitBytes
  }
}

/** Reads a text file of at most `limitBytes`; never reads more than one byte past the limit, whatever stat says. */
export async function readBoundedFile(path: string, limitBytes: number, what: string): Promise<string> {
  const handle = await open(path, 'r')
  try {
    const { size } = await handle.stat()
    if (size > limitBytes) throw new FileTooLargeError(path, size, limitBytes, what)
    // A pipe or a /proc file says size 0: read up to one byte past the limit to catch those too.
    const buffer = Buffer.alloc(limitBytes + 1)
    let length = 0
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null)
      if (bytesRead === 0) break
      length += bytesRead
      if (length > limitBytes) throw new FileTooLargeError(path, Math.max(size, length), limitBytes, what)
    }
    return buffer.toString('utf8', 0, length)
  } finally {
    await handle.close()
  }
}
