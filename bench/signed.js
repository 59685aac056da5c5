'use strict'
// Signed-call throughput against unsigned, with the load in other processes: the server process runs only the
// RPCServer and two VMs (one 'debug', one 'signed'), so signing never competes with it for its JavaScript thread.
// Child processes (LIBVMS_BENCH_CHILDREN, default 1) hold the 32 clients of each mode, connected once. Rounds
// alternate unsigned and signed, so drift on a busy machine hits both; the figure is the median of each.
// The floor of the signed row is the unsigned row of the same run: the target is signed >= 80% of it.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { fork } = require('node:child_process')

const CLIENTS = 32
const CALLS = 10000 // per round, across all clients
const ROUNDS = 3

if (process.argv[2] === '--clients') clientMain()
else main().catch((e) => { console.error(e); process.exit(1) })

/** A child: connects its clients when told, then runs rounds of calls on command and reports when done. */
function clientMain () {
  const { RPCClient, generateKeyPair } = require('..')
  const sets = {}
  process.on('message', async (m) => {
    try {
      if (m.cmd === 'connect') {
        const set = sets[m.mode] = []
        for (let i = 0; i < m.count; i++) {
          const c = new RPCClient({ timeout: 60000, keyPair: m.mode === 'signed' ? generateKeyPair() : undefined })
          await c.connect(m.url)
          set.push(c)
        }
        await run(set, 20 * set.length) // warm-up
        process.send({ ok: true })
      } else if (m.cmd === 'run') {
        const cpu = process.cpuUsage()
        await run(sets[m.mode], m.calls)
        const used = process.cpuUsage(cpu)
        process.send({ ok: true, cpuUs: used.user + used.system })
      } else if (m.cmd === 'close') {
        for (const set of Object.values(sets)) for (const c of set) await c.close()
        process.send({ ok: true })
        process.disconnect()
      }
    } catch (e) {
      process.send({ ok: false, error: String(e && e.stack) })
    }
  })
}

/** `clients` make `total` calls between them, each one after another. */
async function run (clients, total) {
  let next = 0
  await Promise.all(clients.map(async (c) => {
    while (next < total) await c.add(next++, 1)
  }))
}

async function main () {
  const { RPCServer } = require('..')
  const VM = require('../lib/vm')
  const { time, fmt, printTable } = require('./table')
  const CODE = 'exports.add = (a, b) => a + b'
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-bench-signed-'))
  const server = new RPCServer({ maxConnectionsPerAddress: 1024 })
  const vms = []
  const children = []
  const n = Math.max(1, Number(process.env.LIBVMS_BENCH_CHILDREN) || 1)
  try {
    await server.listen({ port: 0, host: '127.0.0.1' })
    for (const [mode, opts] of [['unsigned', {}], ['signed', { auth: 'signed' }]]) {
      const vm = new VM(CODE, opts)
      await vm.deploy({ dir: path.join(root, mode), title: 'bench' })
      vms.push(vm)
      server.mount('/' + mode, vm)
    }
    for (let i = 0; i < n; i++) children.push(child())
    // Split the 32 clients (and each round's calls) between the children.
    const share = (total, i) => Math.floor(total / n) + (i < total % n ? 1 : 0)
    const all = (msg) => Promise.all(children.map((c, i) => c.ask(msg(i))))
    for (const mode of ['unsigned', 'signed']) {
      await all((i) => ({ cmd: 'connect', mode, url: `ws://127.0.0.1:${server.port}/${mode}`, count: share(CLIENTS, i) }))
    }
    const rates = { unsigned: [], signed: [] }
    // CPU time per call, server process and client processes: where a signed call's extra cost lands.
    const cpu = { unsigned: { server: 0, clients: 0 }, signed: { server: 0, clients: 0 } }
    for (let r = 0; r < ROUNDS; r++) {
      for (const mode of ['unsigned', 'signed']) {
        const before = process.cpuUsage()
        let answers
        const secs = await time(async () => { answers = await all((i) => ({ cmd: 'run', mode, calls: share(CALLS, i) })) })
        const used = process.cpuUsage(before)
        cpu[mode].server += (used.user + used.system) / (CALLS * ROUNDS)
        cpu[mode].clients += answers.reduce((sum, a) => sum + a.cpuUs, 0) / (CALLS * ROUNDS)
        rates[mode].push(CALLS / secs)
      }
    }
    const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1]
    const unsigned = median(rates.unsigned)
    const signed = median(rates.signed)
    const range = (a) => `${fmt(Math.min(...a))}-${fmt(Math.max(...a))}`
    const cpuText = (c) => `CPU per call: server ${fmt(c.server)} us, clients ${fmt(c.clients)} us`
    printTable(`Signed calls, ${CLIENTS} clients on 1 VM, clients in ${n} other process(es) (${os.cpus().length} cores, Node ${process.version})`, [
      ['floor: 32 unsigned clients on 1 VM', `${fmt(unsigned)} calls/s (rounds ${range(rates.unsigned)}; ${cpuText(cpu.unsigned)})`, ''],
      ['32 signed clients on 1 signed VM', `${fmt(signed)} calls/s (rounds ${range(rates.signed)}; ${cpuText(cpu.signed)}), ${fmt(100 * signed / unsigned)}% of the floor`, '>= 80% of the floor']
    ])
    await all(() => ({ cmd: 'close' }))
  } finally {
    for (const c of children) c.kill()
    await server.close()
    for (const vm of vms) await vm.close()
    fs.rmSync(root, { recursive: true, force: true })
  }
}

/** A client child process, asked one thing at a time. */
function child () {
  const proc = fork(__filename, ['--clients'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let waiting = null
  proc.on('message', (m) => {
    const w = waiting
    waiting = null
    if (w) m.ok ? w.resolve(m) : w.reject(new Error(m.error))
  })
  proc.on('exit', (code) => {
    if (waiting) waiting.reject(new Error(`client process exited (${code})`))
  })
  return {
    ask: (msg) => new Promise((resolve, reject) => {
      waiting = { resolve, reject }
      proc.send(msg)
    }),
    kill: () => { if (proc.exitCode === null) proc.kill() }
  }
}
