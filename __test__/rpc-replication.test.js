'use strict'
// A plain RPCServer serves its VMs' logs and archives over replication (as libvms 2 did on Dat), unless told not to.
const test = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const path = require('node:path')

const { VM, RPCServer, RPCClient, CallLog } = require('..')
const { tmpdir } = require('./helpers')

async function deployed (t) {
  const vm = new VM('exports.f = () => 1')
  await vm.deploy({ dir: path.join(tmpdir(t), 'vm') })
  t.after(() => vm.close())
  return vm
}

async function handshake (t, url) {
  const client = new RPCClient()
  t.after(() => client.close())
  await client.connect(url)
  return client.backendInfo
}

const refused = (port) => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1')
  s.on('connect', () => { s.destroy(); resolve(false) })
  s.on('error', () => resolve(true))
})

test('mounted before or after listen, a VM is fetchable from the port its handshake names; close() stops it', async (t) => {
  const [a, b] = [await deployed(t), await deployed(t)]
  const server = new RPCServer()
  server.mount('/a', a)
  await server.listen({ port: 0, host: '127.0.0.1' })
  server.mount('/b', b)
  for (const [p, vm] of [['/a', a], ['/b', b]]) {
    const info = await handshake(t, `ws://127.0.0.1:${server.port}${p}`)
    assert.ok(Number.isInteger(info.replicationPort) && info.replicationPort !== server.port)
    const log = await CallLog.fetch(info.callLogUrl, null, { peers: [`127.0.0.1:${info.replicationPort}`] })
    assert.deepEqual(await log.get(0), await vm.callLog.get(0))
    await log.close()
  }
  const port = server._replication.port
  await server.close()
  assert.equal(await refused(port), true)
})

test('{replication: false} serves none and names no port', async (t) => {
  const server = new RPCServer({ replication: false })
  t.after(() => server.close())
  server.mount('/a', await deployed(t))
  await server.listen({ port: 0, host: '127.0.0.1' })
  const info = await handshake(t, `ws://127.0.0.1:${server.port}/a`)
  assert.equal(info.replicationPort, undefined)
  assert.equal(server._replication, null)
})

test('a listen that fails does not leave the replication host behind', async (t) => {
  const taken = new RPCServer({ replication: false })
  t.after(() => taken.close())
  await taken.listen({ port: 0, host: '127.0.0.1' })
  const server = new RPCServer()
  t.after(() => server.close())
  await assert.rejects(server.listen({ port: taken.port, host: '127.0.0.1' }))
  assert.equal(server._replication, null)
})
