'use strict'
// `libvms factory examples/factory.js` with hostile provisioned VMs: one spins, one allocates without end, one
// tries process.exit. The host survives, its other VMs keep answering, SIGTERM still shuts it down, and every
// VM's log still verifies with `libvms verify`.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { RPCClient } = require('..')
const { cli, serve } = require('./cli-helpers')
const { tmpdir } = require('./helpers')

const EXAMPLES = path.join(__dirname, '..', 'examples')

async function connect (t, url) {
  const c = new RPCClient({ timeout: 60000 })
  await c.connect(url, { user: 'alice' })
  t.after(() => c.close())
  return c
}

test('a factory survives provisioned VMs that spin, allocate or call process.exit; the others keep answering and every log verifies', async (t) => {
  const dir = path.join(tmpdir(t), 'host.libvms')
  const host = await serve(t, ['factory', path.join(EXAMPLES, 'factory.js'), '--port', '0', '--dir', dir, '--call-timeout', '3000', '--memory-mb', '48'])
  const factory = await connect(t, host.url)
  const provision = async (code) => (await factory.provisionVM({ code, title: 't' })).id
  const ids = {
    good: await provision(fs.readFileSync(path.join(EXAMPLES, 'counter.js'), 'utf8')),
    spin: await provision('exports.spin = () => { for (;;) {} }\nexports.ok = () => "ok"'),
    bomb: await provision('exports.bomb = () => { const k = []; for (;;) k.push(new Array(1e6).fill(1)) }\nexports.ok = () => "ok"'),
    exit: await provision(`
      exports.exit = () => process.exit(1)
      exports.escape = () => this.constructor.constructor('return process')().exit(1)
      exports.ok = () => 'ok'`)
  }
  const vm = {}
  for (const [name, id] of Object.entries(ids)) vm[name] = await connect(t, host.url + id)

  let spinEnded = false
  const spinning = vm.spin.spin().finally(() => { spinEnded = true })
  const counts = []
  for (let i = 0; i < 3; i++) counts.push(await vm.good.inc())
  assert.deepEqual(counts, [1, 2, 3])
  assert.equal(spinEnded, false, 'the good VM answered while the other spun')
  // Errors on the wire: {message: the error's name, data: its message}.
  await assert.rejects(spinning, { message: 'LimitError', data: /callTimeoutMs/ })
  await assert.rejects(vm.bomb.bomb(), { message: 'LimitError', data: /memoryMb/ })
  await assert.rejects(vm.exit.exit(), { message: 'ReferenceError', data: /process is not defined/ })
  await assert.rejects(vm.exit.escape(), { message: 'EvalError' })
  for (const name of ['spin', 'bomb', 'exit']) assert.equal(await vm[name].ok(), 'ok')
  assert.equal(await vm.good.inc(), 4)

  // A spinning call cannot hold up a shutdown: it is stopped after a short grace.
  const stuck = vm.spin.spin().catch((e) => e)
  await new Promise((resolve) => setTimeout(resolve, 200))
  const stopped = await host.stop('SIGTERM')
  assert.equal(stopped.code, 143, stopped.stdout + stopped.stderr) // stopped by SIGTERM, cleanly
  await stuck

  for (const [name, id] of Object.entries(ids)) {
    const verified = await cli(['verify', path.join(dir, id)])
    assert.equal(verified.code, 0, `${name}: ${verified.stdout}${verified.stderr}`)
  }
})
