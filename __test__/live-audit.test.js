'use strict'
// Auditing a host while it serves: `libvms verify ws://...` fixes a snapshot length L at the start, replays exactly
// entries 0..L-1, compares them with the host's log up to L and the archive at the version entry L-1 names. Clients
// keep calling all the while, and every audit verifies.
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')

const { RPCClient } = require('..')
const { cli, BIN, ENV } = require('./cli-helpers')
const { tmpdir } = require('./helpers')

const SCRIPT = path.join(__dirname, '..', 'examples', 'persisted-counter.js')
const CLIENTS = 4
const AUDITS = 3

async function serve (t, dir) {
  const child = spawn(process.execPath, [BIN, 'exec', SCRIPT, '--port', '0', '--host', '127.0.0.1', '--dir', dir], { env: ENV })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  let out = ''
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => { out += d; if (out.includes('Ctrl+C')) resolve() })
    exited.then((code) => reject(new Error(`host exited with ${code}: ${out}`)))
  })
  return { url: `ws://127.0.0.1:${/ws:\/\/127\.0\.0\.1:(\d+)\//.exec(out)[1]}/`, stop: async () => { child.kill('SIGINT'); return exited } }
}

test('auditing a host by ws:// while clients keep calling verifies every time, on a snapshot', async (t) => {
  const host = await serve(t, path.join(tmpdir(t), 'live.libvms'))
  let running = true
  let calls = 0
  const clients = []
  for (let c = 0; c < CLIENTS; c++) {
    const client = new RPCClient({ timeout: 10000 })
    await client.connect(host.url, { user: `client${c}` })
    clients.push((async () => {
      while (running) {
        await client.call('inc', [])
        calls++
      }
      await client.close()
    })())
  }
  try {
    let lastL = 0
    for (let i = 0; i < AUDITS; i++) {
      while (calls < 20 * (i + 1)) await new Promise((resolve) => setTimeout(resolve, 20))
      const before = calls
      const audit = await cli(['verify', host.url])
      assert.equal(audit.code, 0, `audit ${i}:\n${audit.stdout}\n${audit.stderr}`)
      assert.match(audit.stdout, /VERIFIED\n$/)
      const L = Number(/snapshot at length (\d+)/.exec(audit.stdout)[1])
      // Every count printed agrees with L.
      assert.match(audit.stdout, new RegExp(`replayed ${L}/${L} entries`))
      assert.match(audit.stdout, new RegExp(`named by entry ${L - 1}\\)`))
      assert.ok(L > lastL, `audit ${i}: the snapshot grows (${lastL} -> ${L})`)
      lastL = L
      assert.ok(calls > before, 'clients kept calling during the audit')
    }
  } finally {
    running = false
    await Promise.all(clients)
  }
  await host.stop()
})
