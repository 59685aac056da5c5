'use strict'
// Signed mode (production): signed calls over a real WebSocket, each refusal with captured frames replayed, altered
// and sent to another mount; log entries, receipts (against the host's log and a fetched replica), forks, audits.
const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const WebSocket = require('ws')

const { VM, RPCServer, RPCClient, CallLog, Verifier, ReplicationHost, generateKeyPair, errors } = require('..')
const { defer, rawClient } = require('./rpc-helpers')
const { tmpdir } = require('./helpers')

const CODE = `
exports.add = (a, b) => a + b
exports.whoami = () => System.caller.id
exports.init = () => {}
`
const BIN = path.join(__dirname, '..', 'bin', 'libvms.js')

// The signed bytes as the README specifies them, built here independently of the addon.
function jcs (v) {
  if (Array.isArray(v)) return '[' + v.map(jcs).join(',') + ']'
  if (v && typeof v === 'object') return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + jcs(v[k])).join(',') + '}'
  return JSON.stringify(v)
}
function signedBytes (logKey, seq, method, args) {
  const head = Buffer.alloc(12)
  head.writeBigUInt64LE(BigInt(seq), 0)
  head.writeUInt32LE(Buffer.byteLength(method), 8)
  return Buffer.concat([Buffer.from('libvms/call/v1\n'), logKey, head, Buffer.from(method), Buffer.from(jcs(args))])
}
function nodeKey (secretKey) {
  // PKCS#8 wrapping of an Ed25519 seed, so node:crypto signs with it.
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), secretKey.subarray(0, 32)])
  return crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
}
function frame (keyPair, logKey, seq, method, args, id = 1) {
  const sig = crypto.sign(null, signedBytes(logKey, seq, method, args), nodeKey(keyPair.secretKey))
  return JSON.stringify({ jsonrpc: '2.0', method, params: args, id, auth: { key: keyPair.publicKey.toString('hex'), seq, sig: sig.toString('hex') } })
}

async function signedVM (t, dir, code = CODE) {
  const vm = new VM(code, { auth: 'signed' })
  await vm.deploy({ dir, title: 'signed' })
  defer(t, () => vm.close())
  return vm
}

async function listen (t, mounts, opts) {
  const server = new RPCServer(opts)
  defer(t, () => server.close())
  for (const [p, vm] of Object.entries(mounts)) server.mount(p, vm)
  await server.listen({ port: 0, host: '127.0.0.1' })
  return `ws://127.0.0.1:${server.port}`
}

function refused (msg, why) {
  assert.equal(msg.error.code, -32010, JSON.stringify(msg))
  assert.equal(msg.error.message, 'Unauthorized')
  assert.match(msg.error.data, why)
}

test('a signed VM: signed calls, caller ids, entries, receipts; unsigned, forged, replayed and misdirected calls refused', async (t) => {
  const root = tmpdir({ after: (fn) => defer(t, fn) })
  const dir = path.join(root, 'vm1')
  let vm = await signedVM(t, dir)
  const other = await signedVM(t, path.join(root, 'vm2'))
  let base = await listen(t, { '/vm1': vm, '/vm2': other })
  const init = await vm.callLog.get(0)
  assert.equal(init.auth, 'signed', 'the mode is in the init entry')

  const keyPair = generateKeyPair()
  assert.equal(keyPair.publicKey.length, 32)
  const client = new RPCClient({ keyPair })
  defer(t, () => client.close())
  await client.connect(`${base}/vm1`, { user: 'mallory' })
  const receipts = []
  client.on('receipt', (r) => receipts.push(r))
  assert.equal(await client.whoami(), keyPair.publicKey.toString('hex'), 'System.caller.id is the public key')
  assert.equal(await client.add(2, 3), 5)
  assert.equal(receipts.length, 2)
  const receipt = client.lastReceipt
  assert.deepEqual(Object.keys(receipt).sort(), ['call', 'fork', 'index', 'length', 'signature', 'treeHash'])
  assert.ok(receipt.index < receipt.length)
  const entry = await vm.callLog.get(receipt.index)
  assert.equal(entry.call.userId, keyPair.publicKey.toString('hex'))
  assert.equal(entry.call.methodName, 'add')
  assert.ok(Number.isSafeInteger(entry.auth.seq) && /^[0-9a-f]{128}$/.test(entry.auth.sig))
  // The entry rebuilds the signed bytes exactly: the signature checks with node:crypto.
  const pub = crypto.createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), keyPair.publicKey]), format: 'der', type: 'spki' })
  assert.ok(crypto.verify(null, signedBytes(vm.callLog.key, entry.auth.seq, 'add', entry.call.args), pub, Buffer.from(entry.auth.sig, 'hex')))
  await Verifier.checkReceipt(receipt, vm.callLog)
  await assert.rejects(Verifier.checkReceipt({ ...receipt, index: receipt.index - 1 }, vm.callLog), errors.VerificationError)
  await assert.rejects(Verifier.checkReceipt({ ...receipt, length: receipt.length + 1 }, vm.callLog), errors.VerificationError)
  assert.equal(receipts[1], receipt, 'the receipt emitted is the one lastReceipt holds')
  // With no 'receipt' listener, lastReceipt is parsed when read, once, and follows the latest call.
  client.removeAllListeners('receipt')
  assert.equal(await client.add(1, 1), 2)
  const next = client.lastReceipt
  assert.ok(next.index > receipt.index)
  assert.equal(client.lastReceipt, next)
  await Verifier.checkReceipt(next, vm.callLog)
  // A signing client refuses what has no canonical form.
  await assert.rejects(client.add(-0, 1), errors.EncodingError)
  await assert.rejects(client.add('\ud800', 1), errors.EncodingError)
  await assert.rejects(client.add(NaN, 1), errors.EncodingError)

  const before = vm.callLog.length
  const a = await rawClient(t, `${base}/vm1`)
  a.send({ jsonrpc: '2.0', method: 'add', params: [1, 2], id: 1 })
  refused(await a.next(), /unsigned/)
  // A captured frame: accepted once, then refused on the same and on another connection.
  const seq = Date.now() * 1000 + 1e9
  const captured = frame(keyPair, vm.callLog.key, seq, 'add', [1, 2], 2)
  a.send(captured)
  assert.equal((await a.next()).result, 3)
  a.send(captured)
  refused(await a.next(), /does not exceed/)
  const b = await rawClient(t, `${base}/vm1`)
  b.send(captured)
  refused(await b.next(), /does not exceed/)
  // Altered arguments, method; sent to another VM.
  const fresh = frame(keyPair, vm.callLog.key, seq + 10, 'add', [1, 2], 3)
  b.send(fresh.replace('[1,2]', '[1,3]'))
  refused(await b.next(), /bad signature/)
  b.send(fresh.replace('"add"', '"whoami"'))
  refused(await b.next(), /bad signature/)
  const c = await rawClient(t, `${base}/vm2`)
  c.send(fresh)
  refused(await c.next(), /bad signature/)
  assert.equal(vm.callLog.length, before + 1, 'only the one good frame reached the log')
  assert.equal(other.callLog.length, 2)

  // After a restart the host rebuilds each caller's last sequence number from its log: the frame stays refused.
  await a.ws.terminate()
  await b.ws.terminate()
  await c.ws.terminate()
  await client.close()
  await vm.close()
  vm = await signedVM(t, dir)
  base = await listen(t, { '/vm1': vm })
  const d = await rawClient(t, `${base}/vm1`)
  d.send(captured)
  refused(await d.next(), /does not exceed/)
  d.send(fresh)
  assert.equal((await d.next()).result, 3)

  // The receipt checks against a replica fetched from the host.
  const host = await ReplicationHost.listen()
  defer(t, () => host.close())
  await host.add(vm.callLog)
  const replica = await CallLog.fetch(vm.callLog.url, null, { peers: [`127.0.0.1:${host.port}`], timeout: 10000 })
  defer(t, () => replica.close())
  await Verifier.checkReceipt(receipt, replica)
  await Verifier.compareLogs(vm.callLog, replica)
})

test('a host that forks its log is caught: ForkError with both signed heads', async (t) => {
  const root = tmpdir({ after: (fn) => defer(t, fn) })
  const vm = await signedVM(t, path.join(root, 'a'))
  await vm.close()
  // The same VM (same key) copied: the host now has two histories to tell.
  fs.cpSync(path.join(root, 'a'), path.join(root, 'b'), { recursive: true })
  const a = await signedVM(t, path.join(root, 'a'))
  const b = await signedVM(t, path.join(root, 'b'))
  const base = await listen(t, { '/a': a, '/b': b })
  const keyPair = generateKeyPair()
  const ca = new RPCClient({ keyPair })
  defer(t, () => ca.close())
  await ca.connect(`${base}/a`)
  await ca.add(1, 1)
  const cb = new RPCClient({ keyPair })
  defer(t, () => cb.close())
  await cb.connect(`${base}/b`)
  await cb.add(2, 2)
  assert.equal(ca.lastReceipt.length, cb.lastReceipt.length)
  await assert.rejects(Verifier.checkReceipt(ca.lastReceipt, b.callLog), (e) => {
    assert.ok(e instanceof errors.ForkError)
    assert.equal(e.code, 'FORK')
    assert.ok(Verifier.isFork(a.callLog.key, e.ours, e.theirs), 'two validly signed heads, one length, two trees')
    return true
  })
  assert.equal(Verifier.isFork(a.callLog.key, ca.lastReceipt, ca.lastReceipt), false)
})

test('audits name the first call whose signature or sequence number is wrong; libvms verify exits 1', async (t) => {
  const root = tmpdir({ after: (fn) => defer(t, fn) })
  const dir = path.join(root, 'vm')
  const vm = await signedVM(t, dir)
  const base = await listen(t, { '/vm1': vm })
  const keyPair = generateKeyPair()
  const client = new RPCClient({ keyPair })
  defer(t, () => client.close())
  await client.connect(`${base}/vm1`)
  await client.add(1, 2)
  await client.add(3, 4)
  // Clean so far: the replay and the audit agree.
  const replay = await VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url })
  await Verifier.compareLogs(vm.callLog, replay.callLog)
  await replay.close()
  // The host makes up a call in the user's name, copying a signature.
  const forged = vm.callLog.length
  const copied = await vm.callLog.get(forged - 1)
  copied.call.args = [100, 200]
  await vm.callLog.append(copied)
  await assert.rejects(VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url }), (e) => {
    assert.ok(e instanceof errors.VerificationError)
    assert.equal(e.index, forged)
    return true
  })
  await client.close()
  await vm.close()
  const out = spawnSync(process.execPath, [BIN, 'verify', dir], { encoding: 'utf8', timeout: 60000 })
  assert.equal(out.status, 1, out.stdout + out.stderr)
  assert.match(out.stderr, new RegExp(`entry ${forged}`))
})

test('hostile clients: connections per address are bounded, honest clients on other addresses unaffected', async (t) => {
  const root = tmpdir({ after: (fn) => defer(t, fn) })
  const vm = new VM(CODE)
  await vm.deploy({ dir: path.join(root, 'vm') })
  defer(t, () => vm.close())
  const base = await listen(t, { '/vm1': vm }, { maxConnectionsPerAddress: 2 })
  await rawClient(t, `${base}/vm1`)
  await rawClient(t, `${base}/vm1`)
  await assert.rejects(rawClient(t, `${base}/vm1`))
  // Another address (127.0.0.2 reaches the same loopback server): still served.
  const ws = new WebSocket(`${base}/vm1`, { localAddress: '127.0.0.2' })
  defer(t, () => ws.terminate())
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const reply = new Promise((resolve) => ws.once('message', (m) => resolve(JSON.parse(m.toString()))))
  ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'add', params: [1, 2], id: 1 }))
  assert.equal((await reply).result, 3)
})

test('CLI: keygen writes a key file, exec --signed serves a signed VM, call --key signs, an unsigned call is refused, and the log verifies', async (t) => {
  const { cli, serve } = require('./cli-helpers')
  const dir = tmpdir(t)
  const keyFile = path.join(dir, 'alice.key')
  const made = await cli(['keygen', keyFile])
  assert.equal(made.code, 0, made.stderr)
  const publicKey = made.stdout.trim()
  assert.match(publicKey, /^[0-9a-f]{64}$/)
  assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600)
  assert.equal(JSON.parse(fs.readFileSync(keyFile, 'utf8')).publicKey, publicKey)
  assert.equal((await cli(['keygen', keyFile])).code, 2, 'an existing key file is never overwritten')

  const script = path.join(dir, 'who.js')
  fs.writeFileSync(script, 'exports.whoami = () => System.caller.id\n')
  const vmDir = path.join(dir, 'who.libvms')
  const host = await serve(t, ['exec', script, '--signed', '--port', '0', '--host', '127.0.0.1', '--dir', vmDir])
  const signed = await cli(['call', host.url, 'whoami', '--key', keyFile])
  assert.equal(signed.code, 0, signed.stderr)
  assert.equal(JSON.parse(signed.stdout), publicKey)
  const unsigned = await cli(['call', host.url, 'whoami', '--user', 'mallory'])
  assert.notEqual(unsigned.code, 0)
  assert.match(unsigned.stderr, /Unauthorized|unsigned|signature/i)
  await host.stop()

  const entries = await cli(['log', vmDir, '--json'])
  const calls = entries.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.type === 'call')
  assert.deepEqual(calls.map((e) => [e.call.methodName, e.call.userId]), [['whoami', publicKey]], 'only the signed call reached the log')
  const audit = await cli(['verify', vmDir])
  assert.equal(audit.code, 0, audit.stdout + audit.stderr)
})
