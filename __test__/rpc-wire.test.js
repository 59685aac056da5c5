'use strict'
// The server against raw WebSocket traffic: every kind of bad input, the queue bound, disconnected callers.
// After each, the VM's call log holds exactly the calls that ran, and other clients are still served.
const test = require('node:test')
const assert = require('node:assert/strict')

const { RPCClient } = require('..')
const { defer, serve, rawClient, loggedCalls, sleep } = require('./rpc-helpers')

const req = (method, params, id) => ({ jsonrpc: '2.0', method, params, id })
const err = (code, message, id, data) => ({ jsonrpc: '2.0', error: data === undefined ? { code, message } : { code, message, data }, id })

test('bad input of every kind is answered (or not) as libvms 2, and never logged', async (t) => {
  const { vm, url, base } = await serve(t, { server: { maxMessageSize: 4096 } })
  const ws = await rawClient(t, url)

  const parse = await ws.call('{"jsonrpc":"2.0","method":')
  assert.equal(parse.error.code, -32700)
  assert.equal(parse.id, null)
  assert.deepEqual(await ws.call({ jsonrpc: '1.0', method: 'add', id: 1 }), err(-32600, 'Invalid Request', 1, 'Invalid JSON RPC version'))
  assert.deepEqual(await ws.call({ jsonrpc: '2.0', id: 2 }), err(-32600, 'Invalid Request', 2, 'Method not specified'))
  assert.deepEqual(await ws.call('5'), err(-32600, 'Invalid Request', null))
  assert.deepEqual(await ws.call('[]'), err(-32600, 'Invalid Request', null, 'Invalid array'))
  assert.deepEqual(await ws.call(req('hello', { name: 'x' }, 3)), err(-32602, 'Invalid params', 3))
  assert.deepEqual(await ws.call(req('hello', 'x', 4)), err(-32602, 'Invalid params', 4))
  assert.deepEqual(await ws.call(req('nope', [], 5)), err(-32601, 'Method not found', 5))
  assert.deepEqual(await ws.call(req('init', null, 6)), err(-32000, 'Error', 6, 'RPC method not supported'))
  for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
    assert.deepEqual(await ws.call(req(name, null, 7)), err(-32601, 'Method not found', 7), name)
  }
  // Notifications run (and are logged) but get no reply; the next reply is the next request's.
  ws.send({ jsonrpc: '2.0', method: 'add', params: [1, 1] })
  ws.send({ jsonrpc: '2.0', method: 'nope' })
  assert.deepEqual(await ws.call(req('add', [2, 2], 8)), { jsonrpc: '2.0', result: 4, id: 8 })
  // A batch is answered in one array, notifications left out.
  ws.send([req('add', [3, 3], 9), { jsonrpc: '2.0', method: 'add', params: [4, 4] }, req('init', [], 10), 7])
  assert.deepEqual(await ws.next(), [
    { jsonrpc: '2.0', result: 6, id: 9 },
    err(-32000, 'Error', 10, 'RPC method not supported'),
    err(-32600, 'Invalid Request', null)
  ])
  // Missing or null params mean no arguments.
  assert.deepEqual(await ws.call({ jsonrpc: '2.0', method: 'echo', id: 11 }), { jsonrpc: '2.0', result: [], id: 11 })

  // Nothing mounted at the root or another path.
  const root = await rawClient(t, base + '/')
  assert.deepEqual(await root.call(req('handshake', null, 1)), err(-32601, 'Method not found', 1))
  assert.deepEqual(await root.call(req('init', null, 2)), err(-32601, 'Method not found', 2))

  // An oversized message closes that connection (1009) and nothing else.
  const big = await rawClient(t, url)
  big.send(req('echo', ['x'.repeat(8000)], 1))
  assert.equal(await big.closed, 1009)
  assert.deepEqual(await ws.call(req('add', [5, 5], 12)), { jsonrpc: '2.0', result: 10, id: 12 })

  const calls = (await loggedCalls(vm)).map((e) => [e.call.methodName, e.call.args])
  assert.deepEqual(calls, [
    ['add', [1, 1]], ['add', [2, 2]], ['add', [3, 3]], ['add', [4, 4]], ['echo', []], ['add', [5, 5]]
  ])
  assert.equal(vm.callLog.length, 1 + 1 + 6, 'init entry, the init call, and the six calls that ran')
})

test('more than 1000 waiting calls: the rest are refused with -32000, and only the accepted ones are logged', async (t) => {
  const { vm, url, server } = await serve(t)
  const ws = await rawClient(t, url)
  // While this runs (dequeued, so not counted), exactly 1000 calls can wait behind it.
  // Long enough to still be running when the batch lands, even on a loaded machine.
  ws.send(req('sleep', [1500], 0))
  await sleep(100)
  assert.equal(server.queued('/vm1'), 0)
  const N = 1003
  ws.ws.send(JSON.stringify(Array.from({ length: N }, (_, i) => req('add', [i, 0], i + 1))))
  assert.deepEqual(await ws.next(), { jsonrpc: '2.0', id: 0 }, 'the sleep ends first')
  const replies = await ws.next(20000)
  assert.equal(replies.length, N)
  const refused = replies.filter((r) => r.error)
  assert.equal(refused.length, 3)
  for (const r of refused) {
    assert.deepEqual(r.error, { code: -32000, message: 'Error', data: 'Too many active requests. Try again in a few minutes.' })
  }
  assert.deepEqual(refused.map((r) => r.id), [1001, 1002, 1003])
  assert.equal((await loggedCalls(vm)).length, 1 + 1000)
})

test('a call whose client disconnected before it ran still runs and is logged', async (t) => {
  const { vm, url } = await serve(t)
  const c = new RPCClient()
  defer(t, () => c.close())
  await c.connect(url, { user: 'waiter' })
  const slow = c.sleep(800)
  const gone = await rawClient(t, url + '?user=gone')
  gone.send(req('write', [42, 0], 1))
  await sleep(150)
  gone.ws.terminate()
  await slow
  // The write was queued behind the sleep; it runs although nobody waits for its reply.
  assert.equal(await c.add(1, 2), 3)
  const calls = (await loggedCalls(vm)).map((e) => e.call)
  assert.deepEqual(calls, [
    { methodName: 'sleep', args: [800], userId: 'waiter' },
    { methodName: 'write', args: [42, 0], userId: 'gone' },
    { methodName: 'add', args: [1, 2], userId: 'waiter' }
  ])
  assert.equal(await vm.filesArchive.readFile('/value.txt'), '42')
})
