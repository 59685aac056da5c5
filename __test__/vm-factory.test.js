'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { VMFactory, CallLog } = require('..')
const { RPCServer, RPCClient } = require('..')
const { tmpdir } = require('./helpers')

const FACTORY = fs.readFileSync(path.join(__dirname, '..', 'examples', 'factory.js'), 'utf8')
const COUNTER = fs.readFileSync(path.join(__dirname, '..', 'examples', 'persisted-counter.js'), 'utf8')

// Records what the factory mounts, with RPCServer's mount/unmount signature (the real server is tested below).
function recordingServer () {
  return {
    mounts: new Map(),
    mount (p, vm) { this.mounts.set(p, vm) },
    unmount (p) { this.mounts.delete(p) }
  }
}

async function deployFactory (t, dir, opts) {
  const factory = new VMFactory(FACTORY, opts)
  await factory.deploy({ dir, title: 'test host' })
  t.after(() => factory.close())
  return factory
}

test('provisionVM deploys a VM in <dir>/<id>, mounts it at /<id>, and the factory script sees System.vms', async (t) => {
  const dir = tmpdir(t)
  const factory = await deployFactory(t, dir)
  const server = recordingServer()
  factory.setRPCServer(server)

  const info = await factory.executeCall({ methodName: 'provisionVM', args: [{ code: COUNTER, title: 'c1' }], userId: 'alice' })
  assert.deepEqual(Object.keys(info).sort(), ['callLogUrl', 'filesArchiveUrl', 'id'])
  const vm = factory.getVM(info.id)
  assert.ok(vm)
  assert.equal(factory.VMs[info.id], vm)
  assert.equal(vm.callLog.url, info.callLogUrl)
  assert.equal(vm.filesArchive.url, info.filesArchiveUrl)
  assert.equal(path.resolve(vm.dir), path.resolve(dir, info.id))
  assert.ok(fs.existsSync(path.join(dir, info.id, 'meta.json')))
  assert.equal(server.mounts.get('/' + info.id), vm)
  assert.equal(await vm.executeCall({ methodName: 'inc' }), 1)
  // The factory script recorded the owner in its own archive.
  const record = JSON.parse(await factory.filesArchive.readFile(`/vms/${info.id}.json`))
  assert.equal(record.owner, 'alice')
  assert.deepEqual(await factory.executeCall({ methodName: 'listVMs' }), [info.id])
})

test('System.vms exists only in factory scripts', async (t) => {
  const { VM } = require('..')
  const vm = new VM('exports.has = () => typeof System.vms')
  await vm.deploy({ dir: tmpdir(t) })
  t.after(() => vm.close())
  assert.equal(await vm.executeCall({ methodName: 'has' }), 'undefined')
  const factory = new VMFactory('exports.has = () => Object.keys(System.vms).sort().join()')
  await factory.deploy({ dir: tmpdir(t) })
  t.after(() => factory.close())
  assert.equal(await factory.executeCall({ methodName: 'has' }), 'provisionVM,shutdownVM')
})

test('at maxVMs provisioning fails with "This host is at maximum capacity", and a shutdown frees a slot', async (t) => {
  const factory = await deployFactory(t, tmpdir(t), { maxVMs: 2 })
  // Concurrent provisions count against the limit while they are under way.
  const results = await Promise.allSettled([1, 2, 3].map((n) => factory.provisionVM({ code: COUNTER, title: 'vm' + n })))
  const ok = results.filter((r) => r.status === 'fulfilled')
  const failed = results.filter((r) => r.status === 'rejected')
  assert.equal(ok.length, 2)
  assert.equal(failed.length, 1)
  assert.equal(failed[0].reason.message, 'This host is at maximum capacity')
  assert.equal(failed[0].reason.code, 'AT_CAPACITY')
  // Through the script too: the error is the call's error, logged by name.
  await assert.rejects(factory.executeCall({ methodName: 'provisionVM', args: [{ code: COUNTER }], userId: 'bob' }),
    { message: 'This host is at maximum capacity' })
  const last = await factory.callLog.get(factory.callLog.length - 1)
  assert.equal(last.result.err, 'CapacityError')

  await factory.shutdownVM(ok[0].value.id)
  const again = await factory.provisionVM({ code: COUNTER })
  assert.ok(factory.getVM(again.id))
})

test('bad code is a clear error and leaves nothing behind', async (t) => {
  const dir = tmpdir(t)
  const factory = await deployFactory(t, dir)
  const before = fs.readdirSync(dir).sort()
  await assert.rejects(factory.provisionVM({ code: 'exports.f = (' }), (e) => e.code === 'BAD_ARGUMENT' && /does not compile/.test(e.message))
  await assert.rejects(factory.provisionVM({ code: 42 }), { code: 'BAD_ARGUMENT', message: 'VM code must be a string' })
  await assert.rejects(factory.provisionVM({}), { code: 'BAD_ARGUMENT' })
  // Code that compiles but fails while deploying (its init throws): the half-made VM directory is removed.
  await assert.rejects(factory.provisionVM({ code: 'exports.init = () => { throw new RangeError("no") }' }), { name: 'RangeError' })
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n !== 'vms.json').sort(), before.filter((n) => n !== 'vms.json'))
  assert.deepEqual(Object.keys(factory.VMs), [])
  const reg = fs.existsSync(path.join(dir, 'vms.json')) ? JSON.parse(fs.readFileSync(path.join(dir, 'vms.json'))) : { vms: {} }
  assert.deepEqual(reg.vms, {})
})

test('shutdownVM unmounts and closes the VM; its directory stays as the audit trail', async (t) => {
  const dir = tmpdir(t)
  const factory = await deployFactory(t, dir)
  const server = recordingServer()
  factory.setRPCServer(server)
  const info = await factory.executeCall({ methodName: 'provisionVM', args: [{ code: COUNTER }], userId: 'alice' })
  const vm = factory.getVM(info.id)
  await vm.executeCall({ methodName: 'inc' })

  await assert.rejects(factory.executeCall({ methodName: 'shutdownVM', args: [info.id], userId: 'mallory' }), /not authorized/)
  assert.ok(factory.getVM(info.id))
  await factory.executeCall({ methodName: 'shutdownVM', args: [info.id], userId: 'alice' })
  assert.equal(factory.getVM(info.id), undefined)
  assert.equal(server.mounts.has('/' + info.id), false)
  assert.equal(vm.callLog, null) // closed
  await assert.rejects(factory.shutdownVM(info.id), /No VM with id/)
  // The log is still there and readable.
  const log = await CallLog.open(path.join(dir, info.id, 'call-log'))
  assert.equal(log.length, 2)
  await log.close()
})

test('a factory redeployed on the same dir brings back its live VMs, each with its log and archive intact', async (t) => {
  const dir = tmpdir(t)
  let factory = new VMFactory(FACTORY)
  await factory.deploy({ dir })
  const a = await factory.provisionVM({ code: COUNTER, title: 'a' })
  const b = await factory.provisionVM({ code: 'let n = 0; exports.inc = () => ++n', title: 'b' })
  const c = await factory.provisionVM({ code: COUNTER, title: 'c' })
  for (let i = 0; i < 3; i++) await factory.getVM(a.id).executeCall({ methodName: 'inc' })
  await factory.getVM(b.id).executeCall({ methodName: 'inc' })
  await factory.shutdownVM(c.id)
  await factory.close()
  assert.equal(factory.getVM(a.id), undefined) // close closes the VMs

  factory = new VMFactory(FACTORY)
  await factory.deploy({ dir })
  t.after(() => factory.close())
  const server = recordingServer()
  factory.setRPCServer(server) // VMs brought back are mounted when the server is set
  assert.deepEqual(Object.keys(factory.VMs).sort(), [a.id, b.id].sort())
  assert.deepEqual([...server.mounts.keys()].sort(), ['/' + a.id, '/' + b.id].sort())

  const va = factory.getVM(a.id)
  assert.equal(va.id, a.id)
  assert.equal(va.callLog.url, a.callLogUrl)
  assert.equal(va.filesArchive.url, a.filesArchiveUrl)
  assert.equal(await va.executeCall({ methodName: 'inc' }), 4) // state from the archive
  const vb = factory.getVM(b.id)
  assert.equal(vb.code, 'let n = 0; exports.inc = () => ++n')
  assert.equal(await vb.executeCall({ methodName: 'inc' }), 1) // memory starts afresh...
  const entries = await vb.callLog.list()
  assert.deepEqual(entries.map((e) => e.type), ['init', 'call', 'restart', 'call']) // ...and the log says why
})

test('a provision interrupted by a crash is removed on the next deploy', async (t) => {
  const dir = tmpdir(t)
  const factory = new VMFactory(FACTORY)
  await factory.deploy({ dir })
  await factory.close()
  // What a crash between "registered" and "deployed" leaves: a registry entry and a partial directory.
  const id = '00000000-0000-4000-8000-000000000000'
  fs.mkdirSync(path.join(dir, id, 'files'), { recursive: true })
  fs.writeFileSync(path.join(dir, 'vms.json'), JSON.stringify({ vms: { [id]: { state: 'provisioning' } } }))
  const again = new VMFactory(FACTORY)
  await again.deploy({ dir })
  t.after(() => again.close())
  assert.equal(fs.existsSync(path.join(dir, id)), false)
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'vms.json'))).vms, {})
  assert.deepEqual(Object.keys(again.VMs), [])
})

test('provisioned VMs are served at /<id> over RPC, and shutdownVM closes their connections', async (t) => {
  const dir = tmpdir(t)
  const factory = await deployFactory(t, dir)
  const server = new RPCServer()
  t.after(() => server.close())
  server.mount('/', factory)
  factory.setRPCServer(server)
  await server.listen({ port: 0, host: '127.0.0.1' })
  const port = server.port
  const base = `ws://127.0.0.1:${port}`

  const admin = new RPCClient()
  t.after(() => admin.close())
  await admin.connect(base + '/', { user: 'alice' })
  const info = await admin.provisionVM({ code: COUNTER, title: 'over rpc' })
  assert.equal(typeof info.id, 'string')

  const client = new RPCClient()
  t.after(() => client.close())
  await client.connect(`${base}/${info.id}`, { user: 'bob' })
  assert.equal(client.backendInfo.callLogUrl, info.callLogUrl)
  assert.equal(await client.inc(), 1)
  assert.equal(await client.inc(), 2)

  const closed = new Promise((resolve) => client.on('close', resolve))
  await admin.shutdownVM(info.id)
  await closed
  const late = new RPCClient({ timeout: 2000 })
  t.after(() => late.close())
  await assert.rejects(async () => {
    await late.connect(`${base}/${info.id}`)
    await late.inc()
  })
})
