'use strict'
// Numbers cross the RPC path exactly: Rust parses the client's params and the script's results, and a fast but
// inexact float parser turns some doubles into their neighbour (0.24153859120364474 into 0.2415385912036447).
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

const { RPCServer, VM } = require('..')
const { tmpdir } = require('./helpers')
const { defer, rawClient } = require('./rpc-helpers')

const CODE = `
exports.echo = (...args) => args
exports.echoSlow = async (...args) => { await System.files.readdir('/'); return args }
`

test('numbers reach the script, the log and the client exactly as sent and returned', async (t) => {
  const vm = new VM(CODE)
  await vm.deploy({ dir: path.join(tmpdir({ after: (fn) => defer(t, fn) }), 'vm') })
  defer(t, () => vm.close())
  const server = new RPCServer({ replication: false })
  defer(t, () => server.close())
  server.mount('/vm', vm)
  await server.listen({ port: 0, host: '127.0.0.1' })
  const raw = await rawClient(t, `ws://127.0.0.1:${server.port}/vm`)
  const x = '0.24153859120364474'
  const reply = await raw.call(`{"jsonrpc":"2.0","method":"echo","params":[${x}],"id":1}`)
  assert.equal(reply.result[0], 0.24153859120364474)
  const echoed = await raw.call(`{"jsonrpc":"2.0","method":"echoSlow","params":[${x}],"id":2}`)
  assert.equal(echoed.result[0], 0.24153859120364474)
  const entry = await vm.callLog.get(vm.callLog.length - 1, { valueEncoding: 'utf-8' })
  assert.match(entry, /"args":\[0\.24153859120364474\].*"res":\[0\.24153859120364474\]/)
})
