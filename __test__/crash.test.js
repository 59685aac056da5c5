'use strict'
// Crash consistency: a host SIGKILLed at seeded random moments under concurrent load restarts and verifies, every
// time. After each kill: every acknowledged call is in the log, the host restarts, and a replay of the log in a
// fresh VM matches both the log and the files archive. Seed: LIBVMS_CRASH_SEED (printed on failure).
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawn } = require('node:child_process')
const readline = require('node:readline')

const { VM, RPCClient, CallLog } = require('..')
const { tmpdir, assertReplays } = require('./helpers')

const ROUNDS = 10
const CLIENTS = 4
const HOST = path.join(__dirname, 'crash-host.js')

/** mulberry32: a small seeded PRNG, so a failing round can be replayed. */
function prng (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function startHost (dir) {
  const child = spawn(process.execPath, [HOST, dir], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += d })
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const ready = new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', (line) => resolve(JSON.parse(line)))
    exited.then(({ code }) => reject(new Error(`host exited (${code}) before serving: ${stderr}`)))
  })
  return { child, ready, exited }
}

/** One client's load until stopped: returns the calls acknowledged (replied to without error). */
async function load (port, rand, round, c, stop) {
  const client = new RPCClient({ timeout: 10000 })
  const acked = []
  try {
    await client.connect(`ws://127.0.0.1:${port}/`)
  } catch {
    return acked
  }
  client.on('error', () => {})
  for (let i = 0; !stop.now; i++) {
    const id = `r${round}-c${c}-${i}`
    const r = rand()
    const method = r < 0.04 ? 'big' : r < 0.12 ? 'move' : r < 0.16 ? 'drop' : 'put'
    const arg = method === 'drop' ? `r${round}-c${c}-${Math.max(0, i - 1)}` : id
    try {
      const res = await client.call(method, [arg])
      acked.push({ method, arg, res })
    } catch (e) {
      if (e.code === 'CLOSED' || e.code === 'TIMEOUT' || e.code === 'CONNECTION_FAILED') break
      // A method's own error (e.g. drop of a folder never made) is an acknowledged, logged outcome too.
      if (e && e.message !== undefined && e.code === -32000) acked.push({ method, arg, err: e.message })
    }
  }
  await client.close().catch(() => {})
  return acked
}

test('a host SIGKILLed under load restarts and verifies, round after round', { timeout: 180000 }, async (t) => {
  const seed = Number(process.env.LIBVMS_CRASH_SEED || 20261128)
  const rand = prng(seed)
  const dir = path.join(tmpdir(t), 'vm')
  let undone = 0
  let recovered = 0
  for (let round = 0; round < ROUNDS; round++) {
    const host = startHost(dir)
    t.after(() => host.child.kill('SIGKILL'))
    const { port, recovery } = await host.ready
    if (recovery) {
      recovered++
      undone += recovery.writesUndone
    }
    const stop = { now: false }
    const clients = []
    for (let c = 0; c < CLIENTS; c++) clients.push(load(port, prng(seed + round * 100 + c), round, c, stop))
    const delay = 150 + Math.floor(rand() * 1200)
    await new Promise((resolve) => setTimeout(resolve, delay))
    host.child.kill('SIGKILL')
    const { signal } = await host.exited
    assert.equal(signal, 'SIGKILL', `round ${round} (seed ${seed}): the host was killed`)
    stop.now = true
    const acked = (await Promise.all(clients)).flat()

    // Every acknowledged call is in the log (read as it is on disk, before any reopen).
    const log = await CallLog.open(path.join(dir, 'call-log'))
    const logged = new Set()
    for await (const e of log.entries()) if (e.type === 'call') logged.add(e.call.methodName + ' ' + JSON.stringify(e.call.args))
    await log.close()
    for (const a of acked) {
      assert.ok(logged.has(a.method + ' ' + JSON.stringify([a.arg])), `round ${round} (seed ${seed}, kill at ${delay} ms): acknowledged ${a.method}(${a.arg}) is in the log`)
    }

    // The host restarts (recovering), and a replay matches it.
    const vm = new VM(require('./crash-host').CODE)
    await vm.deploy({ dir })
    if (vm.recovery) {
      recovered++
      undone += vm.recovery.writesUndone
    }
    try {
      await assertReplays(vm)
    } catch (e) {
      e.message = `round ${round} (seed ${seed}, kill at ${delay} ms): ${e.message}`
      throw e
    } finally {
      await vm.close()
    }
    t.diagnostic(`round ${round}: kill at ${delay} ms, ${acked.length} calls acknowledged`)
  }
  t.diagnostic(`seed ${seed}: ${recovered} recoveries undid ${undone} archive writes`)
})
