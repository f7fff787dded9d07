/** A fake application: a shutdown URL that records POSTs, answered with a status (and after a delay) tests set. */
import { createServer } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export async function startFakeApp() {
  const calls: Array<{ method: string; path: string; at: number; userAgent: string | undefined }> = []
  let hang = false
  let delayMs = 0
  let shutdownStatus = 200
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    calls.push({ method: req.method ?? 'GET', path: req.url ?? '/', at: performance.now(), userAgent: req.headers['user-agent'] })
    if (hang) return
    if (req.url === '/shutdown' && req.method === 'POST') {
      setTimeout(() => res.writeHead(shutdownStatus).end(shutdownStatus < 300 ? 'shutting down\n' : 'no\n'), delayMs)
      return
    }
    res.writeHead(404).end()
  })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const base = `http://127.0.0.1:${port}`
  return {
    url: base,
    shutdownUrl: `${base}/shutdown`,
    calls,
    setShutdownStatus(status: number) {
      shutdownStatus = status
    },
    setHang(value: boolean) {
      hang = value
    },
    /** Answer the shutdown POST only after this long: a slow app. */
    setShutdownDelay(ms: number) {
      delayMs = ms
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
