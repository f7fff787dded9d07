/**
 * A TCP relay from an address pods can reach (the node's, on the run's bridge) to a server that listens on this
 * machine's loopback only (the real kube-apiserver), so processes in network namespaces reach it. Bytes pass
 * through untouched: TLS stays end to end, so the API server's certificate must name the relay's address.
 * `hold()` parks new connections unanswered until `release()`, as a client's connection waits while a server starts
 * (the cluster tier's watch-expired test holds the sidecar's reconnect through an API server restart).
 */
import { createConnection, createServer, type Socket } from 'node:net'

export async function startRelay({ host, target }: { host: string; target: { host: string; port: number } }) {
  const sockets = new Set<Socket>()
  const track = (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  }
  let parked: Socket[] | undefined
  const forward = (client: Socket) => {
    const upstream = createConnection(target)
    track(upstream)
    client.pipe(upstream).pipe(client)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
  }
  const server = createServer((client) => {
    track(client)
    if (parked === undefined) return forward(client)
    client.on('error', () => client.destroy())
    parked.push(client)
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve))
  const { port } = server.address() as { port: number }
  return {
    url: `https://${host}:${port}`,
    /** From now on new connections wait, unanswered, until `release()`. */
    hold() {
      parked ??= []
    },
    /** Forwards the connections held (those still open) and every new one; returns how many were held. */
    release(): number {
      const waiting = (parked ?? []).filter((client) => !client.destroyed)
      parked = undefined
      for (const client of waiting) forward(client)
      return waiting.length
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
