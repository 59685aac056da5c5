'use strict'
// SPEC "Where libvms 2.0.2 was wrong" 5: after close() of every VM, server and client, nothing of ours keeps the
// Node event loop alive. A child process does it all and must then exit by itself.
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')

const { tmpdir } = require('./helpers')

const ROOT = path.join(__dirname, '..')

function child (script, dir) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', script], { cwd: ROOT, env: { ...process.env, VM_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (d) => { out += d })
    p.stderr.on('data', (d) => { out += d })
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error('the child did not exit by itself:\n' + out)) }, 8000)
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, out }) })
  })
}

const PRELUDE = `
const { RPCServer, RPCClient } = require('.')
const NodeVMSClient = require('nodevms-client')
const VM = require('./lib/vm')
`

test('the process exits by itself after the VM, the server and the clients are closed', async (t) => {
  const { code, out } = await child(PRELUDE + `
;(async () => {
  const vm = new VM('exports.add = (a, b) => a + b; exports.wait = (ms) => new Promise(r => setTimeout(r, ms))')
  await vm.deploy({ dir: process.env.VM_DIR, title: 'exit' })
  const server = new RPCServer()
  server.mount('/vm1', vm)
  await server.listen({ port: 0, host: '127.0.0.1' })
  const url = 'ws://127.0.0.1:' + server.port + '/vm1'
  const ours = new RPCClient()
  await ours.connect(url)
  const theirs = new NodeVMSClient()
  await theirs.connect(url)
  if (await ours.add(1, 2) !== 3 || await theirs.add(2, 2) !== 4) throw new Error('bad result')
  const late = ours.wait(50)
  await late
  theirs.close()
  await ours.close()
  await server.close()
  await vm.close()
  console.log('closed')
})().catch((e) => { console.error(e); process.exit(2) })
`, tmpdir(t))
  assert.equal(code, 0, out)
  assert.match(out, /closed/)
})

test('a listening server keeps the process alive until it is closed', async (t) => {
  const { code, out } = await child(PRELUDE + `
;(async () => {
  const vm = new VM('exports.add = (a, b) => a + b')
  await vm.deploy({ dir: process.env.VM_DIR, title: 'alive' })
  const server = new RPCServer()
  server.mount('/vm1', vm)
  await server.listen({ port: 0, host: '127.0.0.1' })
  // Nothing else is pending: only the listening server can keep us alive for the client below.
  setTimeout(async () => {
    const c = new RPCClient()
    await c.connect('ws://127.0.0.1:' + server.port + '/vm1')
    console.log('sum', await c.add(20, 22))
    await c.close()
    await server.close()
    await vm.close()
  }, 300).unref()
})().catch((e) => { console.error(e); process.exit(2) })
`, tmpdir(t))
  assert.equal(code, 0, out)
  assert.match(out, /sum 42/)
})
