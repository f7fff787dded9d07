/**
 * The simulated clients as a process of their own, for clients that must sit in another network namespace than the
 * scenario (the node's, where kube-proxy's NAT routes a Service's ClusterIP): steady load on SIM_URL at SIM_RATE
 * requests/s, SIM_KEEPALIVE_SHARE of them on keep-alive connections (SIM_KEEPALIVE_CLIENTS clients with one connection each;
 * sim/load.ts). On SIGTERM it stops,
 * waits for the requests in flight, reports `result` (the totals and every failure) on stdout and exits.
 */
import { emit } from './common.ts'
import { startLoad } from './load.ts'

const load = startLoad({
  url: process.env.SIM_URL!,
  ratePerSecond: Number(process.env.SIM_RATE ?? 200),
  keepAliveShare: Number(process.env.SIM_KEEPALIVE_SHARE ?? 0.5),
  ...(process.env.SIM_KEEPALIVE_CLIENTS ? { keepAliveClients: Number(process.env.SIM_KEEPALIVE_CLIENTS) } : {}),
})
emit('load_started')
process.once('SIGTERM', () => {
  void load.stop().then((result) => {
    emit('result', result)
    process.exit(0)
  })
})
