'use strict'
// Who owns an RPC call's commit: JavaScript reports the outcome, Rust builds the entry from the params it holds and
// commits it. The bytes must be exactly what the JavaScript path writes for the same call.
const test = require('node:test')
const assert = require('node:assert/strict')

const native = require('../lib/native')
const { serve, rawClient } = require('./rpc-helpers')

const CODE = `
exports.f = (...args) => args
exports.u = () => {}
exports.t = () => { throw new TypeError('nope') }
exports.x = () => { throw 'plain' }
exports.big = () => 2n
exports.w = async (s) => { await System.files.writeFile('/w', s); return s.length }
`

// Odd spellings a client may send: the entry holds them as JavaScript writes them.
const PARAMS = [
  '[1.0, -0, -0.0, 1e21, 1E-7, 12345678901234567891, 0.1, 2.5e+22]',
  '[{"b":1,"10":2,"a":{"2":0,"01":1,"1":2},"b":3}]',
  '["\\u0041\\u00e9 \\u2028 \\ud83d\\ude00", "\\u001f\\/", ""]',
  '[[], {}, null, true, [[{"x": [1.50]}]]]'
]

async function entryText (vm, index) {
  return vm.callLog.get(index, { valueEncoding: 'utf-8' })
}

test('an entry Rust builds for an RPC call is byte for byte the one the JavaScript path writes', async (t) => {
  const { vm, url } = await serve(t, { code: CODE })
  const raw = await rawClient(t, url)
  const calls = [...PARAMS.map((p) => ['f', p]), ['u', '[]'], ['t', '[]'], ['x', '[]'], ['big', '[]'], ['w', '["abc"]']]
  for (const [i, [method, params]] of calls.entries()) {
    const reply = await raw.call(`{"jsonrpc":"2.0","method":"${method}","params":${params},"id":${i}}`)
    assert.equal(reply.id, i)
    const rpcIndex = vm.callLog.length - 1
    // The same call through executeCall (an entry JavaScript makes), with the arguments as JSON.parse gives them.
    await vm.executeCall({ methodName: method, args: JSON.parse(params), userId: '' }).catch(() => {})
    const localIndex = vm.callLog.length - 1
    assert.equal(localIndex, rpcIndex + 1)
    const [rpc, local] = [await entryText(vm, rpcIndex), await entryText(vm, localIndex)]
    // Only filesVersion may differ (the write call's second run writes again).
    assert.equal(rpc.replace(/"filesVersion":\d+/, ''), local.replace(/"filesVersion":\d+/, ''), `${method}(${params})`)
  }
  const first = (await entryText(vm, 1)).replace(/"filesVersion":\d+/, '"filesVersion":V')
  assert.equal(first, '{"type":"call","call":{"methodName":"f","args":[1,0,0,1e+21,1e-7,12345678901234567000,0.1,2.5e+22],"userId":""},"result":{"filesVersion":V,"res":[1,0,0,1e+21,1e-7,12345678901234567000,0.1,2.5e+22]}}')
})

test('a commit that fails in Rust fails its call, and the VM runs nothing more until reopened', async (t) => {
  t.after(() => native.injectDiskFull(null))
  const { vm, url } = await serve(t, { code: CODE })
  const raw = await rawClient(t, url)
  assert.deepEqual((await raw.call('{"jsonrpc":"2.0","method":"f","params":[1],"id":1}')).result, [1])
  const length = vm.callLog.length
  native.injectDiskFull(0)
  const failed = await raw.call('{"jsonrpc":"2.0","method":"f","params":[2],"id":2}')
  assert.match(failed.error.data, /the call log failed/)
  native.injectDiskFull(null)
  const refused = await raw.call('{"jsonrpc":"2.0","method":"f","params":[3],"id":3}')
  assert.equal(refused.error.message, 'StorageIOError')
  assert.match(refused.error.data, /reopen/)
  assert.equal(vm.callLog.length, length, 'neither call is in the log')
})
