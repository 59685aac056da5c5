'use strict'
// Replication over TCP on 127.0.0.1: npm hypercore@10 against our host and fetcher, our fetcher against
// replicas and lying peers, archives end to end.
const test = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const path = require('node:path')
const Hypercore = require('hypercore')

const { CallLog, DatArchive, ReplicationHost } = require('..')
const { tmpdir } = require('./helpers')

async function makeLog (t, n) {
  const log = await CallLog.create(path.join(tmpdir(t), 'log'), 'exports.f = 1', 'dat://' + 'ab'.repeat(32))
  t.after(() => log.close())
  for (let i = 1; i < n; i++) await log.append({ i, pad: 'x'.repeat(i % 50) })
  return log
}

async function listen (t, opts) {
  const host = await ReplicationHost.listen(opts)
  t.after(() => host.close())
  return host
}

async function all (log) {
  const out = []
  for await (const e of log.entries()) out.push(e)
  return out
}

function freePort () {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

function once (emitter, event, pred = () => true) {
  return new Promise((resolve) => {
    const on = (...args) => {
      if (!pred(...args)) return
      emitter.off(event, on)
      resolve(args)
    }
    emitter.on(event, on)
  })
}

test('npm hypercore@10 replicates our call log over TCP and follows live appends', async (t) => {
  const log = await makeLog(t, 40)
  const host = await listen(t)
  await host.add(log)
  const core = new Hypercore(path.join(tmpdir(t), 'js-reader'), log.key, { valueEncoding: 'json' })
  await core.ready()
  const socket = net.connect(host.port, '127.0.0.1')
  const stream = core.replicate(true)
  socket.pipe(stream).pipe(socket)
  t.after(async () => { socket.destroy(); stream.destroy(); await core.close() })
  await core.update({ wait: true })
  assert.equal(core.length, 40)
  const ours = await all(log)
  for (let i = 0; i < 40; i++) assert.deepEqual(await core.get(i), ours[i])
  const appended = once(core, 'append')
  await log.append({ live: true })
  await appended
  assert.deepEqual(await core.get(40), { live: true })
})

test('CallLog.fetch downloads from a JS hypercore server', async (t) => {
  const writer = new Hypercore(path.join(tmpdir(t), 'js-writer'), { valueEncoding: 'json' })
  await writer.ready()
  for (let i = 0; i < 25; i++) await writer.append({ js: i })
  const server = net.createServer((sock) => {
    const s = writer.replicate(false)
    sock.pipe(s).pipe(sock)
    sock.on('error', () => {})
    s.on('error', () => {})
    t.after(() => sock.destroy())
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => { server.close(); await writer.close() })
  const url = 'dat://' + writer.key.toString('hex')
  const log = await CallLog.fetch(url, null, { peers: [`127.0.0.1:${server.address().port}`], timeout: 10000 })
  t.after(() => log.close())
  assert.equal(log.length, 25)
  assert.deepEqual(await all(log), Array.from({ length: 25 }, (_, i) => ({ js: i })))
  assert.equal(log.writable, false)
  const got = once(log, 'append', (seq) => seq === 25)
  await writer.append({ js: 'live' })
  await got
  assert.deepEqual(await log.get(25), { js: 'live' })
})

test('CallLog.fetch from a third peer that is only a replica, with live appends passing through', async (t) => {
  const log = await makeLog(t, 100)
  const h1 = await listen(t)
  await h1.add(log)
  const mid = await CallLog.fetch(log.url, path.join(tmpdir(t), 'mid'), { peers: [h1.address] })
  t.after(() => mid.close())
  const h2 = await listen(t)
  await h2.add(mid)
  const last = await CallLog.fetch(log.url, undefined, { peers: [h2.address], timeout: 10000 })
  t.after(() => last.close())
  assert.deepEqual(await all(last), await all(log))
  const got = once(last, 'append', (seq) => seq === 100)
  await log.append({ through: 'mid' })
  await got
  assert.deepEqual(await last.get(100), { through: 'mid' })
})

test('a peer serving corrupted blocks is detected and the fetch completes from an honest peer', async (t) => {
  const log = await makeLog(t, 60)
  const bad = await listen(t, { _corruptBlocks: true })
  await bad.add(log)
  const good = await listen(t)
  await good.add(log)
  const fetched = await CallLog.fetch(log.url, null, { peers: [bad.address, good.address] })
  t.after(() => fetched.close())
  assert.deepEqual(await all(fetched), await all(log))
  await fetched.verify()
  // Only the liar: the fetch fails with the verification error, fast.
  await assert.rejects(CallLog.fetch(log.url, null, { peers: [bad.address], timeout: 5000 }), (e) => {
    assert.ok(['VERIFICATION_FAILED', 'INVALID_PROOF', 'INVALID_SIGNATURE'].includes(e.code), e.code)
    return true
  })
})

test('a fetch with no reachable peer fails within its timeout', async (t) => {
  const port = await freePort()
  const started = Date.now()
  await assert.rejects(
    CallLog.fetch('dat://' + '12'.repeat(32), null, { peers: [`127.0.0.1:${port}`], timeout: 400 }),
    (e) => e.code === 'CONNECTION_FAILED' && e.name === 'ConnectionError'
  )
  assert.ok(Date.now() - started < 3000)
  await assert.rejects(CallLog.fetch('dat://' + '12'.repeat(32), null, { peers: ['nonsense'] }), (e) => e.code === 'BAD_ARGUMENT')
})

test('LIBVMS_PEERS supplies peers', async (t) => {
  const log = await makeLog(t, 5)
  const host = await listen(t)
  await host.add(log)
  process.env.LIBVMS_PEERS = host.address
  t.after(() => { delete process.env.LIBVMS_PEERS })
  const fetched = await CallLog.fetch(log.url)
  t.after(() => fetched.close())
  assert.equal(fetched.length, 5)
})

test('a fetched archive holds the same files as the host', async (t) => {
  const src = await DatArchive.create({ localPath: path.join(tmpdir(t), 'src'), title: 'repl' })
  t.after(() => src.close())
  await src.mkdir('/dir')
  await src.writeFile('/dir/a.txt', 'hello')
  await src.writeFile('/big.bin', Buffer.alloc(300000, 7))
  await src.writeFile('/empty', '')
  const host = await listen(t)
  await host.add(src)
  const copy = new DatArchive(src.url, { localPath: path.join(tmpdir(t), 'copy'), peers: [host.address] })
  t.after(() => copy.close())
  await copy.download('/')
  const files = await src.readdir('/', { recursive: true })
  assert.deepEqual(await copy.readdir('/', { recursive: true }), files)
  for (const f of ['/dat.json', '/dir/a.txt', '/big.bin', '/empty']) {
    assert.deepEqual(await copy.readFile(f, 'binary'), await src.readFile(f, 'binary'), f)
  }
  assert.equal(copy.writable, false)
  assert.equal(await copy.getInfo().then(i => i.version), await src.getInfo().then(i => i.version))
})

test('a fetched archive follows files written on the host later, until closed', async (t) => {
  const src = await DatArchive.create({ localPath: path.join(tmpdir(t), 'src'), title: 'live' })
  t.after(() => src.close())
  const host = await listen(t)
  await host.add(src)
  const copy = new DatArchive(src.url, { localPath: path.join(tmpdir(t), 'copy'), peers: [host.address] })
  await copy.ready()
  assert.deepEqual(await copy.readdir('/'), ['dat.json'])
  await src.writeFile('/later.txt', 'arrived')
  const deadline = Date.now() + 10000
  let got
  while (got === undefined) {
    got = await copy.readFile('/later.txt').catch(() => undefined)
    assert.ok(got !== undefined || Date.now() < deadline, 'the file written later did not arrive')
    if (got === undefined) await new Promise((resolve) => setTimeout(resolve, 10))
  }
  assert.equal(got, 'arrived')
  assert.equal(await copy.getInfo().then(i => i.version), await src.getInfo().then(i => i.version))
  await copy.close()

  // live: false ends the sessions before the archive opens: it stays as fetched.
  const snap = new DatArchive(src.url, { localPath: path.join(tmpdir(t), 'snap'), peers: [host.address], live: false })
  t.after(() => snap.close())
  assert.equal(await snap.readFile('/later.txt'), 'arrived')
  await src.writeFile('/after.txt', 'not for the snapshot')
  await assert.rejects(snap.readFile('/after.txt'))
})

test('an RPC server with a replication host names its port in the handshake; clients learn it as a peer', async (t) => {
  const { VM, RPCServer, RPCClient, Verifier } = require('..')
  const vm = new VM('exports.put = async (s) => { await System.files.writeFile("/s.txt", s) }')
  await vm.deploy({ dir: path.join(tmpdir(t), 'vm') })
  t.after(() => vm.close())
  const replication = await listen(t)
  const server = new RPCServer({ replication })
  server.mount('/vm', vm)
  await server.listen({ port: 0, host: '127.0.0.1' })
  t.after(() => server.close())
  const client = new RPCClient()
  await client.connect(`ws://127.0.0.1:${server.port}/vm`)
  t.after(() => client.close())
  assert.equal(client.backendInfo.replicationPort, replication.port)
  await client.put('hello')

  // No peers given: the handshake registered 127.0.0.1:<replicationPort>.
  const log = await CallLog.fetch(client.backendInfo.callLogUrl, undefined, { timeout: 5000 })
  t.after(() => log.close())
  await Verifier.compareLogs(vm.callLog, log).catch((e) => assert.fail(e.message))
  const files = new DatArchive(client.backendInfo.filesArchiveUrl, { localPath: path.join(tmpdir(t), 'files'), timeout: 5000 })
  t.after(() => files.close())
  assert.equal(await files.readFile('/s.txt'), 'hello')
})
