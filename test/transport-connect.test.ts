/** The side-call client reports each connection it opens (the traffic gate's own-call exclusion), and only those. */
import { createServer } from 'node:net'
import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import test from 'ava'
import { createFetch } from '../src/transport.ts'
import { freePort } from '../sim/fakes/sidecar-process.ts'

test('onConnect is told the local end of each new connection, which the server sees as its peer', async (t) => {
  const peers: string[] = []
  const server = createHttpServer((req, res) => {
    peers.push(`${req.socket.remoteAddress}|${req.socket.remotePort}`)
    res.setHeader('connection', 'close')
    res.end('ok')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const ends: string[] = []
  const fetch = createFetch({ onConnect: (address, port) => ends.push(`${address}|${port}`) })
  t.teardown(() => fetch.close())
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  for (let i = 0; i < 3; i++) t.is(await (await fetch(url)).text(), 'ok')
  t.is(ends.length, 3, 'the server closed each connection: three connections')
  t.deepEqual(ends, peers)
})

test('a refused connection fails the request as usual and reports nothing', async (t) => {
  const ends: string[] = []
  const fetch = createFetch({ onConnect: (address, port) => ends.push(`${address}|${port}`) })
  t.teardown(() => fetch.close())
  await t.throwsAsync(fetch(`http://127.0.0.1:${await freePort()}/`), { message: 'fetch failed' })
  t.deepEqual(ends, [])
})

test('an onConnect that throws breaks no request', async (t) => {
  const server = createServer((socket) => {
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const fetch = createFetch({
    onConnect: () => {
      throw new Error('bookkeeping broke')
    },
  })
  t.teardown(() => fetch.close())
  t.is(await (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)).text(), 'ok')
})
