/**
 * A TCP relay from an address pods can reach (the node's, on the run's bridge) to a server that listens on this
 * machine's loopback only (the real kube-apiserver), so processes in network namespaces reach it. Bytes pass
 * through untouched: TLS stays end to end, so the API server's certificate must name the relay's address.
 */
import { createConnection, createServer, type Socket } from 'node:net'

export async function startRelay({ host, target }: { host: string; target: { host: string; port: number } }) {
  const sockets = new Set<Socket>()
  const track = (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  }
  const server = createServer((client) => {
    track(client)
    const upstream = createConnection(target)
    track(upstream)
    client.pipe(upstream).pipe(client)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve))
  const { port } = server.address() as { port: number }
  return {
    url: `https://${host}:${port}`,
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
