'use strict'
// Discovery: find and fetch a 10,000-entry call log over a loopback Hyperswarm DHT (@hyperswarm/testnet on
// 127.0.0.1), from the call to the last entry, beside the same fetch from a known TCP peer (the floor: no lookup).
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const createTestnet = require('@hyperswarm/testnet')

const { CallLog, ReplicationHost } = require('..')
const { time, fmt, printTable } = require('./table')

const ENTRIES = Number(process.env.BENCH_DHT_ENTRIES || 10000)
const RUNS = 3

async function main () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-bench-dht-'))
  const testnet = await createTestnet(3, { host: '127.0.0.1' })
  const rows = []
  try {
    const log = await CallLog.create(path.join(root, 'log'), 'exports.f = 1', 'dat://' + 'ab'.repeat(32))
    const batch = []
    for (let i = 1; i < ENTRIES; i++) batch.push(log.append({ type: 'call', call: { methodName: 'f', args: [i] }, result: { filesVersion: 1, res: i } }))
    await Promise.all(batch)
    const host = await ReplicationHost.listen({ bootstrap: testnet.bootstrap })
    await host.add(log)

    const dht = []
    const tcp = []
    for (let r = 0; r < RUNS; r++) {
      // Each run is a new fetcher: a new DHT node, lookup, connection (Noise over UDX), then the download.
      let a
      dht.push(await time(async () => { a = await CallLog.fetch(log.url, null, { bootstrap: testnet.bootstrap, timeout: 600000 }) }))
      if (a.length !== ENTRIES) throw new Error(`fetched ${a.length} of ${ENTRIES} over the DHT`)
      await a.close()
      let b
      tcp.push(await time(async () => { b = await CallLog.fetch(log.url, null, { peers: [host.address], timeout: 600000 }) }))
      if (b.length !== ENTRIES) throw new Error(`fetched ${b.length} of ${ENTRIES} over TCP`)
      await b.close()
    }
    const med = (xs) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length / 2)]
    const tDht = med(dht)
    const tTcp = med(tcp)
    rows.push([`find and fetch a ${fmt(ENTRIES)}-entry log over a loopback DHT (median of ${RUNS})`,
      `${fmt(tDht * 1000)} ms (${fmt(ENTRIES / tDht)} entries/s); ${fmt(tDht / tTcp, 1)}× the floor`, ''])
    rows.push([`floor: fetch it from a known TCP peer, same run`, `${fmt(tTcp * 1000)} ms`, ''])
    await host.close()
    await log.close()
  } finally {
    await testnet.destroy()
    fs.rmSync(root, { recursive: true, force: true })
  }
  printTable('Discovery (loopback Hyperswarm testnet, Rust host → Rust fetcher)', rows)
}

main().catch((e) => { console.error(e); process.exit(1) })
