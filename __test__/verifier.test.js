'use strict'
// Replay (VM.fromCallLog) and the Verifier: honest hosts verify, tampering and nondeterminism are caught.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

const { VM, CallLog, DatArchive, Verifier, errors } = require('..')
const { tmpdir, flipByte } = require('./helpers')

const SCRIPT = `
  let counter = 0
  exports.init = async () => { await System.files.mkdir('/data').catch(() => {}) } // a restart finds it there
  exports.inc = async (by) => {
    counter += by
    await System.files.writeFile('/data/counter.json', JSON.stringify({ counter, by: System.caller.id }))
    return counter
  }
  exports.blob = async (hex) => { await System.files.writeFile('/data/blob.bin', Buffer.from(hex, 'hex')) }
  exports.remove = async () => { await System.files.unlink('/data/blob.bin') }
  exports.fail = () => { throw new Error('nope') }
  exports.random = () => System.test.random()`

async function host (t, code = SCRIPT) {
  const vm = new VM(code)
  await vm.deploy({ dir: path.join(tmpdir(t), 'host'), title: 'host' })
  t.after(() => vm.close())
  return vm
}

async function replay (t, vm, opts = {}) {
  const replica = await VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url }, opts)
  t.after(() => replica.close())
  return replica
}

async function allFiles (archive) {
  const out = {}
  for (const name of await archive.readdir('/', { recursive: true })) {
    const p = '/' + name
    if ((await archive.stat(p)).isFile()) out[p] = await archive.readFile(p, 'binary')
  }
  return out
}

test('a replay reproduces the log and the archive byte for byte', async (t) => {
  const vm = await host(t)
  await vm.executeCall({ methodName: 'inc', args: [2], userId: 'alice' })
  await vm.executeCall({ methodName: 'blob', args: ['00ff10'.repeat(40000)] })
  await vm.executeCall({ methodName: 'fail' }).catch(() => {})
  await vm.executeCall({ methodName: 'inc', args: [3], userId: 'bob' })
  await vm.executeCall({ methodName: 'remove' })
  await vm.executeCall({ methodName: 'blob', args: ['abcd'] })

  const progress = []
  const replica = await replay(t, vm, { onProgress: (done, total) => progress.push([done, total]) })
  assert.equal(replica.callLog.length, vm.callLog.length)
  assert.deepEqual(progress.at(-1), [vm.callLog.length, vm.callLog.length])
  // Counts are log entries, init included: (1, total) once the replica exists, then one per replayed entry.
  assert.deepEqual(progress[0], [1, vm.callLog.length])
  assert.equal(progress.length, vm.callLog.length)
  await Verifier.compareLogs(vm.callLog, replica.callLog)
  await Verifier.compareArchives(vm.filesArchive, replica.filesArchive)
  assert.equal(replica.filesArchive.version, vm.filesArchive.version)
  const [a, b] = [await allFiles(vm.filesArchive), await allFiles(replica.filesArchive)]
  assert.deepEqual(Object.keys(a).sort(), ['/dat.json', '/data/blob.bin', '/data/counter.json'])
  delete a['/dat.json'] // each archive has its own manifest
  delete b['/dat.json']
  for (const p of Object.keys(a)) assert.ok(a[p].equals(b[p]), p)
  assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort())
  // The replica really re-executed: its in-memory state matches the host's.
  assert.equal(await replica.executeCall({ methodName: 'inc', args: [0] }), 5)
})

test('a replay into a given dir keeps it; without one the temp dir is removed at close', async (t) => {
  const vm = await host(t)
  await vm.executeCall({ methodName: 'inc', args: [1] })
  const dir = path.join(tmpdir(t), 'replica')
  const kept = await VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url }, { dir })
  await kept.close()
  const log = await CallLog.open(path.join(dir, 'call-log'))
  t.after(() => log.close())
  assert.equal(log.length, vm.callLog.length)

  const temp = await VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url })
  const tempDir = temp.dir
  await temp.close()
  assert.equal(require('node:fs').existsSync(tempDir), false)
})

test('a VM restarted several times still verifies', async (t) => {
  const dir = path.join(tmpdir(t), 'host')
  for (let run = 0; run < 3; run++) {
    const vm = new VM(SCRIPT)
    await vm.deploy({ dir, title: 'restarts' })
    assert.equal(await vm.executeCall({ methodName: 'inc', args: [1] }), 1, 'memory starts afresh after a restart')
    await vm.close()
  }
  const vm = new VM(SCRIPT)
  await vm.deploy({ dir })
  t.after(() => vm.close())
  const replica = await replay(t, vm)
  await Verifier.compareLogs(vm.callLog, replica.callLog)
  await Verifier.compareArchives(vm.filesArchive, replica.filesArchive)
  const types = (await replica.callLog.list()).map(e => e.type)
  assert.deepEqual(types.filter(x => x === 'restart').length, 3)
})

test('an archive changed behind the log\'s back fails compareArchives, naming the paths', async (t) => {
  const dir = path.join(tmpdir(t), 'host')
  const vm = new VM(SCRIPT)
  await vm.deploy({ dir })
  await vm.executeCall({ methodName: 'inc', args: [1] })
  const url = vm.filesArchive.url
  await vm.close()

  const archive = new DatArchive(url, { localPath: path.join(dir, 'files') })
  await archive.writeFile('/data/counter.json', '{"counter":1000}')
  await archive.writeFile('/planted.txt', 'not from a call')
  await archive.close()

  // The auditor opens what the host has on disk: the log still tells the honest story, the archive does not.
  const log = await CallLog.open(path.join(dir, 'call-log'))
  const files = new DatArchive(url, { localPath: path.join(dir, 'files') })
  t.after(() => Promise.all([log.close(), files.close()]))
  const replica = await VM.fromCallLog(log, { filesArchiveUrl: url })
  t.after(() => replica.close())
  await Verifier.compareLogs(log, replica.callLog)
  await assert.rejects(Verifier.compareArchives(files, replica.filesArchive), (e) => {
    assert.ok(e instanceof errors.VerificationError)
    assert.equal(e.code, 'VERIFICATION_MISMATCH')
    assert.deepEqual(e.changed, ['/data/counter.json'])
    assert.deepEqual(e.removed, ['/planted.txt'])
    assert.deepEqual(e.added, [])
    assert.match(e.message, /planted\.txt/)
    return true
  })
})

test('a nondeterministic script fails compareLogs at the first divergent entry', async (t) => {
  const saved = process.env.NODE_ENV
  process.env.NODE_ENV = 'test'
  t.after(() => { if (saved === undefined) delete process.env.NODE_ENV; else process.env.NODE_ENV = saved })
  const vm = await host(t)
  await vm.executeCall({ methodName: 'inc', args: [1] })
  await vm.executeCall({ methodName: 'inc', args: [1] })
  await vm.executeCall({ methodName: 'random' })
  await vm.executeCall({ methodName: 'inc', args: [1] })
  const replica = await replay(t, vm)
  await assert.rejects(Verifier.compareLogs(vm.callLog, replica.callLog), (e) => {
    assert.ok(e instanceof errors.VerificationError)
    assert.equal(e.index, 4) // 0 init entry, 1 init call, 2-3 inc, 4 random
    assert.equal(e.a.call.methodName, 'random')
    assert.notEqual(e.a.result.res, e.b.result.res)
    assert.match(e.message, /entry 4/)
    return true
  })
})

test('compareLogs: logs of different lengths or different code differ', async (t) => {
  const vm = await host(t)
  await vm.executeCall({ methodName: 'inc', args: [1] })
  const replica = await replay(t, vm)
  await vm.executeCall({ methodName: 'inc', args: [1] })
  await assert.rejects(Verifier.compareLogs(vm.callLog, replica.callLog), (e) => {
    assert.equal(e.index, 3)
    assert.equal(e.b, undefined)
    assert.equal(e.a.call.methodName, 'inc')
    return true
  })
  const other = await host(t, SCRIPT + '\n// changed')
  await assert.rejects(Verifier.compareLogs(vm.callLog, other.callLog), { name: 'VerificationError', index: 0 })
  await assert.rejects(Verifier.compareLogs(vm.callLog, {}), errors.BadArgumentError)
  await assert.rejects(Verifier.compareArchives(vm.filesArchive, null), errors.BadArgumentError)
})

test('a snapshot replay and compare read only entries 0..L-1, whatever follows them in the log', async (t) => {
  // What an audit of a live host meets: its fetched log knows a longer signed length than the blocks it holds
  // yet. Here the entry past the snapshot cannot be read (a flipped byte); the signed-call audit, the replay and
  // the comparison of the snapshot must not touch it.
  const dir = path.join(tmpdir(t), 'host')
  const vm = new VM(SCRIPT)
  await vm.deploy({ dir, title: 'host' })
  for (let i = 0; i < 3; i++) await vm.executeCall({ methodName: 'inc', args: [1] })
  const L = vm.callLog.length - 1
  const filesArchiveUrl = vm.filesArchive.url
  await vm.close()
  flipByte(path.join(dir, 'call-log', 'data'), -3) // inside the last entry
  const log = await CallLog.open(path.join(dir, 'call-log'))
  t.after(() => log.close())
  await assert.rejects(log.get(L), { code: 'VERIFICATION_FAILED' })
  const replica = await VM.fromCallLog(log, { filesArchiveUrl }, { length: L })
  t.after(() => replica.close())
  await Verifier.compareLogs(log, replica.callLog, { length: L })
  await assert.rejects(Verifier.compareLogs(log, replica.callLog), { code: 'VERIFICATION_FAILED' })
})

test('fromCallLog refuses a mismatched files archive URL and a log that does not start with init', async (t) => {
  const vm = await host(t)
  await assert.rejects(VM.fromCallLog(vm.callLog, { filesArchiveUrl: 'dat://' + '00'.repeat(32) }),
    { name: 'BadArgumentError', message: /Mismatched files archive URL/ })
  // A log whose entry 0 is a call, written below the CallLog API.
  const dir = path.join(tmpdir(t), 'not-init')
  const core = require('../lib/native').NativeLog.create(dir)
  await core.append([Buffer.from(JSON.stringify({ type: 'call', call: { methodName: 'f', args: [] }, result: { filesVersion: 1 } }))])
  await core.close()
  const log = await CallLog.open(dir)
  t.after(() => log.close())
  await assert.rejects(VM.fromCallLog(log, { filesArchiveUrl: 'dat://y' }), { name: 'BadArgumentError', message: 'Malformed call log' })
})

test('a method that changes its arguments: the log keeps them as they were passed, so a replay verifies', async (t) => {
  const vm = await host(t, `
    exports.grab = (list, opts) => { list.push('more'); opts.seen = true; return list.length }`)
  assert.equal(await vm.executeCall({ methodName: 'grab', args: [['a'], {}] }), 2)
  const entry = await vm.callLog.get(vm.callLog.length - 1)
  assert.deepEqual(entry.call.args, [['a'], {}])
  const replica = await replay(t, vm)
  await Verifier.compareLogs(vm.callLog, replica.callLog)
})
