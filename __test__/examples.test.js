'use strict'
// Every script in examples/ runs here, so the examples never rot.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { VM, VMFactory, RPCServer, RPCClient } = require('..')
const { tmpdir } = require('./helpers')

const EXAMPLES = path.join(__dirname, '..', 'examples')
const read = (name) => fs.readFileSync(path.join(EXAMPLES, name), 'utf8')

async function deploy (t, name, dir = tmpdir(t)) {
  const vm = new VM(read(name))
  await vm.deploy({ dir, title: name })
  t.after(() => vm.close())
  return vm
}

function caller (vm, userId) {
  return (methodName, ...args) => vm.executeCall({ methodName, args, userId })
}

test('every example has a test here', () => {
  const tested = ['counter.js', 'persisted-counter.js', 'hello-world.js', 'files.js', 'key-server.js', 'factory.js']
  assert.deepEqual(fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.js')).sort(), tested.sort())
})

test('counter.js counts in memory and starts afresh after a restart', async (t) => {
  const dir = tmpdir(t)
  const vm = new VM(read('counter.js'))
  await vm.deploy({ dir })
  const call = caller(vm)
  assert.equal(await call('inc'), 1)
  assert.equal(await call('inc'), 2)
  assert.equal(await call('get'), 2)
  await vm.close()
  const again = await deploy(t, 'counter.js', dir)
  assert.equal(await caller(again)('get'), 0)
})

test('persisted-counter.js keeps its count in the files archive across restarts', async (t) => {
  const dir = tmpdir(t)
  const vm = new VM(read('persisted-counter.js'))
  await vm.deploy({ dir })
  assert.equal(await caller(vm)('get'), 0)
  assert.equal(await caller(vm)('inc'), 1)
  assert.equal(await caller(vm)('inc'), 2)
  assert.equal(await vm.filesArchive.readFile('/counter'), '2')
  await vm.close()
  const again = await deploy(t, 'persisted-counter.js', dir)
  assert.equal(await caller(again)('inc'), 3)
})

test('hello-world.js greets the caller by id', async (t) => {
  const vm = await deploy(t, 'hello-world.js')
  assert.equal(await caller(vm, 'bob')('helloWorld'), 'Hello, bob!')
  assert.equal(await caller(vm)('helloWorld'), 'Hello, world!')
  assert.equal(await caller(vm, 'alice')('whoami'), 'alice')
})

test('files.js stores notes in the archive and refuses bad names', async (t) => {
  const vm = await deploy(t, 'files.js')
  const call = caller(vm, 'alice')
  await call('write', 'todo.txt', 'buy milk')
  await call('write', 'b', 42)
  assert.equal(await call('read', 'todo.txt'), 'buy milk')
  assert.equal(await call('read', 'b'), '42')
  assert.deepEqual((await call('list')).sort(), ['b', 'todo.txt'])
  await call('remove', 'b')
  assert.deepEqual(await call('list'), ['todo.txt'])
  await assert.rejects(call('write', '../escape', 'x'), /A note name/)
  await assert.rejects(call('read', 'missing'), { name: 'NotFoundError' })
})

test('key-server.js: anyone sets the first admins, then only admins change keys', async (t) => {
  const vm = await deploy(t, 'key-server.js')
  const alice = caller(vm, 'alice')
  const mallory = caller(vm, 'mallory')
  await alice('setAdmins', [{ id: 'alice', name: 'Alice' }])
  await alice('setKey', 'alice', 'ed25519:aaaa')
  assert.equal(await mallory('getKey', 'alice'), 'ed25519:aaaa')
  await assert.rejects(mallory('setKey', 'alice', 'ed25519:evil'), /Not allowed/)
  await assert.rejects(mallory('setAdmins', [{ id: 'mallory', name: 'M' }]), /Not allowed/)
  await assert.rejects(alice('setAdmins', [{ id: 'x' }]), /Admin items/)
  assert.equal(await alice('getKey', 'nobody'), null)
  assert.deepEqual(await alice('listKeys'), ['alice'])
  await alice('delKey', 'alice')
  assert.deepEqual(await alice('listKeys'), [])
  // Values made inside the VM's context have its prototypes: compare them as the log stores them, as JSON.
  assert.deepEqual(JSON.parse(JSON.stringify(await mallory('getAdmins'))), [{ id: 'alice', name: 'Alice' }])
})

test('factory.js provisions VMs for their owners; only the owner shuts one down', async (t) => {
  const factory = new VMFactory(read('factory.js'), { maxVMs: 3 })
  await factory.deploy({ dir: tmpdir(t) })
  t.after(() => factory.close())
  const alice = caller(factory, 'alice')
  const bob = caller(factory, 'bob')
  const info = await alice('provisionVM', { code: read('hello-world.js'), title: 'greeter' })
  assert.equal(await factory.getVM(info.id).executeCall({ methodName: 'helloWorld', userId: 'carol' }), 'Hello, carol!')
  assert.deepEqual(await bob('listVMs'), [info.id])
  await assert.rejects(bob('shutdownVM', info.id), /not authorized/)
  await alice('shutdownVM', info.id)
  assert.deepEqual(await bob('listVMs'), [])
  await assert.rejects(alice('shutdownVM', info.id), /VM record not found/)
})

test('the examples over RPC: counter, hello-world with ?user=', async (t) => {
  const counter = await deploy(t, 'counter.js')
  const hello = await deploy(t, 'hello-world.js')
  const server = new RPCServer()
  t.after(() => server.close())
  server.mount('/counter', counter)
  server.mount('/hello', hello)
  await server.listen({ port: 0, host: '127.0.0.1' })
  const port = server.port

  const c = new RPCClient()
  t.after(() => c.close())
  await c.connect(`ws://127.0.0.1:${port}/counter`)
  assert.equal(await c.inc(), 1)
  assert.equal(await c.inc(), 2)

  const h = new RPCClient()
  t.after(() => h.close())
  await h.connect(`ws://127.0.0.1:${port}/hello`, { user: 'bob' })
  assert.equal(await h.helloWorld(), 'Hello, bob!')
})
