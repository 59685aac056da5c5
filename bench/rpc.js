'use strict'
// RPC benchmark: round trips through RPCServer -> VM (logged, durable) -> RPCClient, on 127.0.0.1.
// The floor is the same RPCClient against a bare `ws` (JavaScript) server that answers every request at once.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const WebSocket = require('ws')
const { RPCServer, RPCClient, generateKeyPair } = require('..')
const VM = require('../lib/vm')
const { time, fmt, printTable } = require('./table')

const CODE = 'exports.add = (a, b) => a + b'

async function deploy (root, i, opts) {
  const vm = new VM(CODE, opts)
  await vm.deploy({ dir: path.join(root, 'vm' + i), title: 'bench' })
  return vm
}

/** Mountable like a VM but runs calls in memory, unlogged: isolates the cost of the RPC path itself. */
const memoryBackend = {
  exports: { add: (a, b) => a + b },
  callLog: { url: 'dat://' + '00'.repeat(32) },
  filesArchive: { url: 'dat://' + '11'.repeat(32) },
  executeCall: async ({ args }) => args[0] + args[1]
}

async function connect (url, keyPair) {
  const c = new RPCClient({ timeout: 60000, keyPair })
  await c.connect(url)
  return c
}

/** `clients` each make calls one after another until `total` calls are done. Returns calls/s. */
async function load (clients, total) {
  let next = 0
  const secs = await time(() => Promise.all(clients.map(async (c) => {
    while (next < total) await c.add(next++, 1)
  })))
  return total / secs
}

/** A bare ws server answering each JSON-RPC request with a result: no validation, no queue, no VM, no log. */
async function echoServer () {
  const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0 })
  await new Promise((resolve) => wss.once('listening', resolve))
  wss.on('connection', (ws) => ws.on('message', (data) => {
    const m = JSON.parse(data)
    ws.send(JSON.stringify(m.method === 'handshake'
      ? { jsonrpc: '2.0', result: { methods: ['add'] }, id: m.id }
      : { jsonrpc: '2.0', result: m.params[0] + m.params[1], id: m.id }))
  }))
  return wss
}

/** A bare 128-byte write + fdatasync, ms each. */
function fsyncFloorMs (root) {
  const fd = fs.openSync(path.join(root, 'floor'), 'w')
  const buf = Buffer.alloc(128, 1)
  const N = 1000
  const t = process.hrtime.bigint()
  for (let i = 0; i < N; i++) {
    fs.writeSync(fd, buf, 0, buf.length, i * 128)
    fs.fdatasyncSync(fd)
  }
  fs.closeSync(fd)
  return Number(process.hrtime.bigint() - t) / 1e6 / N
}

async function main () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-bench-rpc-'))
  const rows = []
  // Every client here comes from 127.0.0.1: lift the per-address bound (default 128) above the ~130 clients opened.
  const server = new RPCServer({ maxConnectionsPerAddress: 1024 })
  const vms = []
  const clients = []
  try {
    await server.listen({ port: 0, host: '127.0.0.1' })
    const base = `ws://127.0.0.1:${server.port}`
    for (let i = 0; i < 32; i++) {
      vms.push(await deploy(root, i))
      server.mount('/vm' + i, vms[i])
    }

    const one = await connect(base + '/vm0')
    clients.push(one)
    await load([one], 200) // warm-up
    const SEQ = 3000
    const seq = await load([one], SEQ)
    rows.push(['sequential round trips, 1 client, 1 VM', `${fmt(seq)}/s (${fmt(1000 / seq, 3)} ms each)`])

    const same = []
    for (let i = 0; i < 32; i++) same.push(await connect(base + '/vm0'))
    clients.push(...same)
    const unsigned = await load(same, 20000)
    rows.push(['32 clients on 1 VM', `${fmt(unsigned)} calls/s`])

    // Signed mode: each call's Ed25519 signature checked in Rust, each reply with a receipt. Target >= 80% of unsigned.
    const signedVM = await deploy(root, 'signed', { auth: 'signed' })
    vms.push(signedVM)
    server.mount('/signed', signedVM)
    const signers = []
    for (let i = 0; i < 32; i++) signers.push(await connect(base + '/signed', generateKeyPair()))
    clients.push(...signers)
    const signed = await load(signers, 20000)
    rows.push(['32 signed clients on 1 signed VM', `${fmt(signed)} calls/s (${fmt(100 * signed / unsigned)}% of unsigned; target >= 80%)`])

    const spread = []
    for (let i = 0; i < 32; i++) spread.push(await connect(base + '/vm' + i))
    clients.push(...spread)
    rows.push(['32 clients on 32 VMs (one each)', `${fmt(await load(spread, 40000))} calls/s`])

    server.mount('/mem', memoryBackend)
    const mem = await connect(base + '/mem')
    clients.push(mem)
    await load([mem], 500)
    const memSeq = await load([mem], 10000)
    rows.push(['RPC path only (in-memory backend, no log), sequential', `${fmt(memSeq)}/s (${fmt(1000 / memSeq, 3)} ms each)`])
    const memMany = []
    for (let i = 0; i < 32; i++) memMany.push(await connect(base + '/mem'))
    clients.push(...memMany)
    rows.push(['RPC path only, 32 clients', `${fmt(await load(memMany, 40000))} calls/s`])

    const wss = await echoServer()
    const bare = await connect(`ws://127.0.0.1:${wss.address().port}/`)
    await load([bare], 200)
    const floor = await load([bare], 10000)
    rows.push(['floor: RPCClient <-> bare `ws` echo server, sequential', `${fmt(floor)}/s (${fmt(1000 / floor, 3)} ms each)`])
    // Issue 13's ratios, against floors from this same run: a round trip vs (echo + one 128-byte write + fdatasync),
    // 32 clients vs the same 32-client echo.
    const fsyncMs = fsyncFloorMs(root)
    const seqMs = 1000 / seq
    rows.push(['floor: 128-byte write + fdatasync', `${fmt(fsyncMs, 3)} ms`])
    rows.push(['round trip, 1 client / (echo + fsync)', `${fmt(seqMs / (1000 / floor + fsyncMs), 2)}x (target <= 1.5x)`])
    const bares = []
    for (let i = 0; i < 32; i++) bares.push(await connect(`ws://127.0.0.1:${wss.address().port}/`))
    const echo32 = await load(bares, 40000)
    for (const c of bares) await c.close()
    rows.push(['floor: 32 clients <-> bare `ws` echo', `${fmt(echo32)} calls/s`])
    rows.push(['32 clients on 1 VM / 32-client echo', `${fmt(unsigned / echo32, 2)}x (target >= 0.5x)`])
    await bare.close()
    await new Promise((resolve) => wss.close(resolve))

    printTable(`RPC, every call logged durably (${os.cpus().length} cores, Node ${process.version})`, rows)
  } finally {
    for (const c of clients) await c.close()
    await server.close()
    for (const vm of vms) await vm.close()
    fs.rmSync(root, { recursive: true, force: true })
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
