'use strict'
// libvms verify --follow: the incremental audit of a host under load. After the first audit, each step holds the
// log's new signed head, replays only the new entries into the same replica and compares; one line per step.
// `--follow-steps N` ends it after N steps (exit 0); Ctrl+C ends it with 130. No process is left behind.
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')

const { RPCClient } = require('..')
const { cli, serve, BIN, ENV } = require('./cli-helpers')
const { tmpdir } = require('./helpers')

const SCRIPT = path.join(__dirname, '..', 'examples', 'persisted-counter.js')

/** Clients calling `inc` until stopped. */
async function load (url, n) {
  let running = true
  let calls = 0
  const loops = []
  for (let c = 0; c < n; c++) {
    const client = new RPCClient({ timeout: 10000 })
    await client.connect(url, { user: `client${c}` })
    loops.push((async () => {
      while (running) {
        await client.call('inc', [])
        calls++
      }
      await client.close()
    })())
  }
  return { get calls () { return calls }, async stop () { running = false; await Promise.all(loops) } }
}

test('verify --follow --follow-steps 3 against a host under load: three steps, each on a new signed head, verified', async (t) => {
  const host = await serve(t, ['exec', SCRIPT, '--port', '0', '--host', '127.0.0.1', '--dir', path.join(tmpdir(t), 'h.libvms')])
  const clients = await load(host.url, 3)
  try {
    while (clients.calls < 10) await new Promise((resolve) => setTimeout(resolve, 20))
    const r = await cli(['verify', host.url, '--follow', '--follow-steps', '3'])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /VERIFIED\n$/)
    const L = Number(/snapshot at length (\d+)/.exec(r.stdout)[1])
    const steps = [...r.stdout.matchAll(/✓ step (\d+): entries (\d+)\.\.(\d+) replayed and compared \(signed head: length (\d+), fork 0, tree hash [0-9a-f]{64}\)/g)]
    assert.equal(steps.length, 3, r.stdout)
    let next = L
    for (const [, step, from, to, length] of steps) {
      assert.equal(Number(from), next, `step ${step} starts where the last ended`)
      assert.ok(Number(to) >= Number(from))
      assert.equal(Number(length), Number(to) + 1, 'the head held covers exactly the entries compared')
      next = Number(to) + 1
    }
  } finally {
    await clients.stop()
  }
  assert.equal((await host.stop()).code, 130)
})

test('verify --follow ends with Ctrl+C (exit 130) and --json prints one object per step', async (t) => {
  const host = await serve(t, ['exec', SCRIPT, '--port', '0', '--host', '127.0.0.1', '--dir', path.join(tmpdir(t), 'h.libvms')])
  const clients = await load(host.url, 2)
  const child = spawn(process.execPath, [BIN, 'verify', host.url, '--follow', '--json'], { env: ENV })
  const exited = new Promise((resolve) => child.on('close', (code) => resolve(code)))
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += d })
  try {
    // Interrupted once a step has been printed.
    await new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => { stdout += d; if (/"step":1/.test(stdout)) resolve() })
      exited.then((code) => reject(new Error(`verify exited with ${code}: ${stdout}${stderr}`)))
    })
    child.kill('SIGINT')
    assert.equal(await exited, 130, stderr)
  } finally {
    await clients.stop()
  }
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l))
  const step = lines.find((l) => l.step === 1)
  assert.ok(step.head.length === step.to + 1 && step.from <= step.to, JSON.stringify(step))
  assert.equal(lines[lines.length - 1].verdict, 'interrupted')
  assert.equal((await host.stop()).code, 130)
})

test('verify --follow on a VM directory is refused (exit 2): its log is locked while it runs', async (t) => {
  const r = await cli(['verify', tmpdir(t), '--follow'])
  assert.equal(r.code, 2, r.stderr)
  assert.match(r.stderr, /--follow audits a running host/)
})
