'use strict'
// Restarts come back: an init that is not idempotent (mkdir of a folder that exists) is logged, warned about and
// replayed, and the VM (or factory, with its VMs) serves and verifies. Plus the factory's rpcUrl.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { VM, VMFactory, RPCServer } = require('..')
const { tmpdir, assertReplays } = require('./helpers')
const { cli, serve } = require('./cli-helpers')

const EXAMPLES = path.join(__dirname, '..', 'examples')
// What the original README's factory example and the user did: mkdir in init, no try/catch.
const DATA_VM = `
exports.init = async () => { await System.files.mkdir('/data') }
exports.put = async (k, v) => { await System.files.writeFile('/data/' + k, JSON.stringify(v)); return v }
exports.get = async (k) => JSON.parse(await System.files.readFile('/data/' + k))
`
const STRICT_FACTORY = fs.readFileSync(path.join(EXAMPLES, 'factory.js'), 'utf8')
  .replace(/exports\.init = async \(\) => \{[\s\S]*?\n\}\n/, "exports.init = async () => { await System.files.mkdir('/vms') }\n")

test('API: a restart whose init throws resolves, emits warning and logs the error; a first deploy still rejects; replay verifies', async (t) => {
  const dir = path.join(tmpdir(t), 'data.libvms')
  const vm = new VM(DATA_VM)
  await vm.deploy({ dir, title: 'data' })
  await vm.executeCall({ methodName: 'put', args: ['a', 1] })
  await vm.close()

  const again = new VM(DATA_VM)
  const warnings = []
  again.on('warning', (w) => warnings.push(w))
  await again.deploy({ dir })
  assert.equal(warnings.length, 1)
  assert.match(warnings[0].message, /init threw on restart \(logged as entry 4; the VM serves anyway\): EntryAlreadyExistsError/)
  assert.equal(warnings[0].entry, 4)
  assert.equal(await again.executeCall({ methodName: 'get', args: ['a'] }), 1)
  const entry = await again.callLog.get(4)
  assert.deepEqual(entry.call, { methodName: 'init', args: [] })
  assert.equal(entry.result.err, 'EntryAlreadyExistsError')
  await assertReplays(again)
  await again.close()

  const first = new VM('exports.init = async () => { throw new Error("db not ready") }')
  await assert.rejects(first.deploy({ dir: path.join(tmpdir(t), 'x') }), /db not ready/)
  await first.close()
})

test('CLI: a VM whose init is not idempotent comes back after Ctrl+C, with one warning line, and verifies', async (t) => {
  const work = tmpdir(t)
  const script = path.join(work, 'data.js')
  fs.writeFileSync(script, DATA_VM)
  const dir = path.join(work, 'data.libvms')
  const first = await serve(t, ['exec', script, '--port', '0', '--dir', dir])
  assert.equal((await cli(['call', first.url, 'put', '"a"', '1'])).stdout, '1\n')
  assert.equal((await first.stop()).code, 130)

  const second = await serve(t, ['exec', script, '--port', '0', '--dir', dir])
  assert.equal((await cli(['call', second.url, 'get', '"a"'])).stdout, '1\n')
  const stopped = await second.stop()
  assert.equal(stopped.code, 130)
  const warnings = stopped.stderr.split('\n').filter(Boolean)
  assert.equal(warnings.length, 1, stopped.stderr)
  assert.match(warnings[0], /^libvms: warning: init threw on restart .*EntryAlreadyExistsError: \/data already exists$/)

  const verified = await cli(['verify', dir])
  assert.equal(verified.code, 0, verified.stdout + verified.stderr)
  assert.match(verified.stdout, /VERIFIED\n$/)
})

test('CLI: examples/factory.js and a factory whose init is not idempotent restart with their VMs; the VMs verify; rpcUrl', async (t) => {
  const work = tmpdir(t)
  const strict = path.join(work, 'strict-factory.js')
  fs.writeFileSync(strict, STRICT_FACTORY)
  for (const script of [path.join(EXAMPLES, 'factory.js'), strict]) {
    const dir = path.join(work, path.basename(script, '.js') + '.libvms')
    const host = await serve(t, ['factory', script, '--port', '0', '--dir', dir])
    // A provisioned VM whose own init is not idempotent either.
    const made = await cli(['call', host.url, 'provisionVM', JSON.stringify({ code: DATA_VM, title: 'd' }), '--user', 'alice'])
    assert.equal(made.code, 0, made.stderr)
    const info = JSON.parse(made.stdout)
    // `libvms factory` knows its URL, so provisionVM names the VM's.
    assert.equal(info.rpcUrl, host.url + info.id)
    assert.equal((await cli(['call', info.rpcUrl, 'put', '"k"', '"v"'])).code, 0)
    assert.equal((await host.stop()).code, 130)

    const back = await serve(t, ['factory', script, '--port', '0', '--dir', dir])
    assert.deepEqual(JSON.parse((await cli(['call', back.url, 'listVMs'])).stdout), [info.id])
    assert.equal((await cli(['call', back.url + info.id, 'get', '"k"'])).stdout, '"v"\n')
    const stopped = await back.stop()
    assert.equal(stopped.code, 130)
    const warnings = stopped.stderr.split('\n').filter(Boolean)
    // The provisioned VM's init always throws on a restart; the strict factory's own init too.
    assert.equal(warnings.length, script === strict ? 2 : 1, stopped.stderr)
    assert.ok(warnings.some((w) => w.startsWith(`libvms: warning: VM ${info.id}: init threw on restart`)), stopped.stderr)

    const vmVerified = await cli(['verify', path.join(dir, info.id)])
    assert.equal(vmVerified.code, 0, vmVerified.stdout + vmVerified.stderr)

    // The factory's own log replays too: its provisions and shutdowns are served from the log (System.vms is an
    // oracle), and none runs again.
    const factoryVerify = await cli(['verify', dir])
    assert.equal(factoryVerify.code, 0, factoryVerify.stdout + factoryVerify.stderr)
    assert.match(factoryVerify.stdout, /VERIFIED\n$/)
    assert.deepEqual(fs.readdirSync(dir).filter((f) => /^[0-9a-f-]{36}$/.test(f)), [info.id], 'the replay provisioned nothing')
  }
})

test('verify ws:// on a running factory that provisioned and shut down a VM: verified (exit 0)', async (t) => {
  const dir = path.join(tmpdir(t), 'f.libvms')
  const host = await serve(t, ['factory', path.join(EXAMPLES, 'factory.js'), '--port', '0', '--dir', dir])
  const made = await cli(['call', host.url, 'provisionVM', JSON.stringify({ code: 'exports.x = () => 1' }), '--user', 'alice'])
  assert.equal(made.code, 0, made.stderr)
  const { id } = JSON.parse(made.stdout)
  assert.equal((await cli(['call', host.url, 'shutdownVM', JSON.stringify(id), '--user', 'alice'])).code, 0)
  const r = await cli(['verify', host.url, '--timeout', '10000'])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.match(r.stdout, /VERIFIED\n$/)
  assert.equal((await host.stop()).code, 130)
})

test('API: provisionVM returns exactly {id, callLogUrl, filesArchiveUrl} without a known URL, plus rpcUrl with one', async (t) => {
  const factory = new VMFactory(STRICT_FACTORY)
  await factory.deploy({ dir: path.join(tmpdir(t), 'f') })
  t.after(() => factory.close())
  const plain = await factory.provisionVM({ code: 'exports.x = () => 1' })
  assert.deepEqual(Object.keys(plain).sort(), ['callLogUrl', 'filesArchiveUrl', 'id'])
  const server = new RPCServer()
  t.after(() => server.close())
  assert.throws(() => factory.setRPCServer(server, { url: 'http://nope/' }), /ws:\/\/ or wss:\/\//)
  factory.setRPCServer(server, { url: 'wss://vms.example.org/factory' })
  const named = await factory.provisionVM({ code: 'exports.x = () => 1' })
  assert.equal(named.rpcUrl, `wss://vms.example.org/factory/${named.id}`)
})
