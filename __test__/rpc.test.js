'use strict'
// RPCServer / RPCClient: wire compatibility with the original nodevms-client@2.0.0, our own client, ordering.
const test = require('node:test')
const assert = require('node:assert/strict')
const NodeVMSClient = require('nodevms-client')

const { RPCServer, RPCClient, VM, Verifier, errors } = require('..')
const { defer, serve, deployVM, loggedCalls, rawClient } = require('./rpc-helpers')

const METHODS = ['hello', 'add', 'noop', 'whoami', 'fail', 'failType', 'throwValue', 'echo', 'sleep', 'write']

async function original (t, url, opts) {
  const c = new NodeVMSClient({ timeout: 3000 })
  defer(t, () => c.close())
  await c.connect(url, opts)
  return c
}

async function ours (t, url, opts, clientOpts) {
  const c = new RPCClient(clientOpts)
  defer(t, () => c.close())
  await c.connect(url, opts)
  return c
}

test('nodevms-client@2.0.0 talks to our server: handshake, args, undefined, errors, user', async (t) => {
  const { vm, server, url } = await serve(t)
  const c = await original(t, url)
  // A plain RPCServer replicates its VMs (as libvms 2 did on Dat) and names the port.
  const replicationPort = server._replication.port
  assert.deepEqual(c.backendInfo, { methods: METHODS, callLogUrl: vm.callLog.url, filesArchiveUrl: vm.filesArchive.url, replicationPort })
  assert.equal(await c.hello('bob'), 'hello bob')
  assert.equal(await c.add(2, 3), 5)
  assert.equal(await c.noop(), undefined)
  await assert.rejects(c.fail(), (e) => { assert.deepEqual(e, { code: -32000, message: 'Error', data: 'boom' }); return true })
  await assert.rejects(c.failType(), (e) => {
    assert.deepEqual(e, { code: -32000, message: 'TypeError', data: "Cannot read properties of null (reading 'x')" })
    return true
  })
  assert.equal(await c.whoami(), '')
  await assert.rejects(c.throwValue(), (e) => { assert.equal(e, 'oops'); return true })
  assert.equal(c.init, undefined, 'init is not offered')

  const alice = await original(t, url, { user: 'alice' })
  assert.equal(await alice.whoami(), 'alice')

  const calls = (await loggedCalls(vm)).map((e) => e.call)
  assert.deepEqual(calls, [
    { methodName: 'hello', args: ['bob'], userId: '' },
    { methodName: 'add', args: [2, 3], userId: '' },
    { methodName: 'noop', args: [], userId: '' },
    { methodName: 'fail', args: [], userId: '' },
    { methodName: 'failType', args: [], userId: '' },
    { methodName: 'whoami', args: [], userId: '' },
    { methodName: 'throwValue', args: [], userId: '' },
    { methodName: 'whoami', args: [], userId: 'alice' }
  ])
  const results = (await loggedCalls(vm)).map((e) => e.result)
  assert.deepEqual(results[0], { filesVersion: 1, res: 'hello bob' })
  assert.deepEqual(results[3], { filesVersion: 1, err: 'Error' })
})

test('nodevms-client: an unmounted path refuses the handshake with -32601', async (t) => {
  const { base } = await serve(t)
  const c = new NodeVMSClient()
  defer(t, () => c.close())
  await assert.rejects(c.connect(base + '/other'), (e) => {
    assert.deepEqual(e, { code: -32601, message: 'Method not found' })
    return true
  })
})

test('our client: same API as nodevms-client, plus url, events, typed timeouts', async (t) => {
  const { vm, url, server } = await serve(t)
  const c = new RPCClient({ timeout: 200 })
  const events = []
  for (const ev of ['open', 'ready', 'close']) c.on(ev, () => events.push(ev))
  await c.connect(url, { user: 'bob smith&co' })
  assert.deepEqual(events, ['open', 'ready'])
  assert.equal(c.url, url)
  assert.deepEqual(c.backendInfo.methods, METHODS)
  assert.equal(c.backendInfo.callLogUrl, vm.callLog.url)
  assert.equal(await c.whoami(), 'bob smith&co')
  assert.deepEqual(await c.echo({ z: 1, a: [true, null] }, 'x'), [{ z: 1, a: [true, null] }, 'x'])
  assert.equal(await c.noop(), undefined)
  await assert.rejects(c.fail(), (e) => { assert.deepEqual(e, { code: -32000, message: 'Error', data: 'boom' }); return true })
  // A non-Error throw travels as the error member itself (as rpc-websockets did), and is what the call rejects with.
  await assert.rejects(c.throwValue(), (e) => { assert.equal(e, 'oops'); return true })
  await assert.rejects(c.call('nope', []), (e) => { assert.deepEqual(e, { code: -32601, message: 'Method not found' }); return true })

  await assert.rejects(c.sleep(600), (e) => {
    assert.ok(e instanceof errors.TimeoutError)
    assert.equal(e.code, 'TIMEOUT')
    return true
  })

  const closed = new Promise((resolve) => c.once('close', (code) => resolve(code)))
  await c.close()
  assert.equal(await closed, 1000)
  await assert.rejects(c.add(1, 2), errors.ClosedError)
  await c.close() // idempotent
  assert.equal(server.queued('/vm1'), 0)
})

test('our client: connect failures', async (t) => {
  const { base, server } = await serve(t)
  await assert.rejects(new RPCClient().connect(base + '/other'), (e) => {
    assert.deepEqual(e, { code: -32601, message: 'Method not found' })
    return true
  })
  await assert.rejects(new RPCClient().connect('http://127.0.0.1:1/x'), errors.BadArgumentError)
  // A port nobody listens on: take the server's port after it closed.
  const port = server.port
  await server.close()
  await assert.rejects(new RPCClient({ timeout: 1000 }).connect(`ws://127.0.0.1:${port}/vm1`), (e) => {
    assert.equal(e.code, 'CONNECTION_FAILED')
    return true
  })
  const c = await ours(t, base.replace(String(port), '1') + '/vm1').catch((e) => e)
  assert.equal(c.code, 'CONNECTION_FAILED')
})

test('a server closing ends the client with close 1000', async (t) => {
  const { url, server } = await serve(t)
  const c = await ours(t, url)
  const closed = new Promise((resolve) => c.once('close', (code) => resolve(code)))
  await server.close()
  assert.equal(await closed, 1000)
  assert.equal(server.connections, 0)
})

test('several clients at once, ours and the original, on one VM', async (t) => {
  const { vm, url } = await serve(t)
  const clients = []
  for (let i = 0; i < 4; i++) clients.push(await ours(t, url, { user: 'u' + i }))
  for (let i = 0; i < 2; i++) clients.push(await original(t, url, { user: 'o' + i }))
  const results = await Promise.all(clients.flatMap((c, i) => [c.add(i, 100), c.whoami()]))
  assert.deepEqual(results, clients.flatMap((c, i) => [i + 100, i < 4 ? 'u' + i : 'o' + (i - 4)]))
  assert.equal((await loggedCalls(vm)).length, 12)
})

test('a reply leaves only once its call is durably in the log', async (t) => {
  const { vm, url } = await serve(t)
  const clients = []
  for (let i = 0; i < 8; i++) clients.push(await ours(t, url, { user: 'u' + i }))
  const base = vm.callLog.length
  let replies = 0
  // 8 clients x 25 calls, many sharing a commit: whenever a reply arrives, its entry (and every one before it in
  // the log) is already committed, so the log is at least as long as the replies received.
  await Promise.all(clients.map(async (c, i) => {
    for (let k = 0; k < 25; k++) {
      assert.equal(await c.add(i, k), i + k)
      replies++
      assert.ok(vm.callLog.length >= base + replies, `reply ${replies} came before its entry was durable`)
    }
  }))
  assert.equal(vm.callLog.length, base + 200)
})

test('over RPC a method sees its arguments exactly as the log holds them, so a replay verifies', async (t) => {
  const { vm, url } = await serve(t, {
    code: `
      exports.kinds = (...args) => args.map((a) => Object.is(a, -0) ? 'minus zero' : typeof a)
      exports.grab = (list) => { list.push('more'); return list.length }`
  })
  const c = await ours(t, url)
  // A raw client can send a negative zero; JSON.stringify writes it as 0, so the method must see 0: a replay,
  // reading the log, will.
  const raw = await rawClient(t, url)
  const reply = await raw.call('{"jsonrpc":"2.0","method":"kinds","params":[-0.0,1.5,"x",null],"id":1}')
  assert.deepEqual(reply.result, ['number', 'number', 'string', 'object'])
  assert.equal(await c.grab(['a']), 2)
  const calls = await loggedCalls(vm)
  assert.deepEqual(calls.map((e) => e.call.args), [[0, 1.5, 'x', null], [['a']]])
  const replica = await VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url })
  defer(t, () => replica.close())
  await Verifier.compareLogs(vm.callLog, replica.callLog)
})

test('calls do not race: each runs to the end before the next starts, in arrival order', async (t) => {
  const { vm, url } = await serve(t)
  const c = await ours(t, url)
  // Earlier calls wait longer: if calls overlapped, the first would write last.
  const done = await Promise.all([0, 1, 2, 3, 4].map((i) => c.write(i, (5 - i) * 20)))
  assert.deepEqual(done, [0, 1, 2, 3, 4])
  assert.equal(await vm.filesArchive.readFile('/value.txt'), '4')
  const calls = await loggedCalls(vm)
  assert.deepEqual(calls.map((e) => e.call.args[0]), [0, 1, 2, 3, 4])
  assert.deepEqual(calls.map((e) => e.result.filesVersion), [2, 3, 4, 5, 6])
})

test('mount before listen, unmount, and mount again', async (t) => {
  const vm = await deployVM(t)
  const server = new RPCServer()
  defer(t, () => server.close())
  server.mount('/a', vm)
  assert.equal(server.address(), null)
  const addr = await server.listen({ port: 0, host: '127.0.0.1' })
  assert.equal(addr.port, server.port)
  assert.ok(server.port > 0)
  const c = await ours(t, `ws://127.0.0.1:${server.port}/a`)
  assert.equal(await c.add(1, 1), 2)
  const closed = new Promise((resolve) => c.once('close', resolve))
  assert.equal(server.unmount('/a'), true)
  assert.equal(server.unmount('/a'), false)
  await closed
  await assert.rejects(ours(t, `ws://127.0.0.1:${server.port}/a`), (e) => e.code === -32601)
  server.mount('/b', vm)
  const d = await ours(t, `ws://127.0.0.1:${server.port}/b`)
  assert.equal(await d.hello('again'), 'hello again')
  assert.throws(() => server.mount('no-slash', vm), errors.BadArgumentError)
  assert.throws(() => server.mount('/x', {}), errors.BadArgumentError)
  await assert.rejects(server.listen({ port: 0, host: '127.0.0.1' }), errors.BadArgumentError)
})

test('listen validates its port and reports a busy one', async (t) => {
  const { server } = await serve(t)
  const other = new RPCServer()
  defer(t, () => other.close())
  await assert.rejects(other.listen(70000), errors.BadArgumentError)
  await assert.rejects(other.listen({ port: server.port, host: '127.0.0.1' }), errors.StorageIOError)
})
