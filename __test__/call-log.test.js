'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const { CallLog, errors } = require('..')
const { tmpdir, flipByte } = require('./helpers')

const URL_RE = /^dat:\/\/[0-9a-f]{64}$/

async function createLog (t, code = 'exports.f = v => v + 1', filesUrl = 'dat://' + 'ab'.repeat(32)) {
  const dir = path.join(tmpdir(t), 'call-log')
  const log = await CallLog.create(dir, code, filesUrl)
  t.after(() => log.close())
  return { dir, log }
}

test('create writes the init entry and exposes url, key and discovery key', async (t) => {
  const { log } = await createLog(t, 'exports.x = 1', 'dat://' + '11'.repeat(32))
  assert.match(log.url, URL_RE)
  assert.ok(Buffer.isBuffer(log.key) && log.key.length === 32)
  assert.ok(Buffer.isBuffer(log.discoveryKey) && log.discoveryKey.length === 32)
  assert.notDeepEqual(log.key, log.discoveryKey)
  assert.equal(log.url, 'dat://' + log.key.toString('hex'))
  assert.equal(log.length, 1)
  assert.equal(log.writable, true)
  assert.deepEqual(await log.get(0), { type: 'init', code: 'exports.x = 1', filesArchiveUrl: 'dat://' + '11'.repeat(32) })
})

test('appendCall writes the exact entry shapes of libvms 2', async (t) => {
  const { log } = await createLog(t)
  assert.equal(await log.appendCall({ methodName: 'f', args: [5], userId: 'bob', res: 6, filesVersion: 1 }), 1)
  assert.deepEqual(await log.get(1), {
    type: 'call', call: { methodName: 'f', args: [5], userId: 'bob' }, result: { filesVersion: 1, res: 6 }
  })
  // No userId, no result value: the keys are absent, not null.
  await log.appendCall({ methodName: 'noop', args: [], filesVersion: 1 })
  const e2 = await log.get(2)
  assert.deepEqual(e2, { type: 'call', call: { methodName: 'noop', args: [] }, result: { filesVersion: 1 } })
  assert.equal(Object.hasOwn(e2.call, 'userId'), false)
  assert.equal(Object.hasOwn(e2.result, 'res'), false)
  // err is the error's name, falling back to its message.
  await log.appendCall({ methodName: 'g', args: [], userId: '', err: new TypeError('nope'), filesVersion: 2 })
  const plain = new Error('only a message'); plain.name = ''
  await log.appendCall({ methodName: 'h', args: [], err: plain, filesVersion: 2 })
  assert.deepEqual((await log.get(3)).result, { filesVersion: 2, err: 'TypeError' })
  assert.equal((await log.get(3)).call.userId, '')
  assert.deepEqual((await log.get(4)).result, { filesVersion: 2, err: 'only a message' })
  // Extra fields (future: signatures) are kept.
  await log.appendCall({ methodName: 'f', args: [1], res: 2, filesVersion: 2, sig: 'abc' })
  assert.equal((await log.get(5)).sig, 'abc')
})

test('get decodes json, utf-8 and binary; unknown encodings are refused', async (t) => {
  const { log } = await createLog(t)
  await log.append({ a: 'é' })
  assert.deepEqual(await log.get(1), { a: 'é' })
  assert.equal(await log.get(1, { valueEncoding: 'utf-8' }), '{"a":"é"}')
  assert.equal(await log.get(1, { valueEncoding: 'utf8' }), '{"a":"é"}')
  const bin = await log.get(1, { valueEncoding: 'binary' })
  assert.ok(Buffer.isBuffer(bin))
  assert.equal(bin.toString(), '{"a":"é"}')
  await assert.rejects(log.get(1, { valueEncoding: 'yaml' }), { code: 'BAD_ARGUMENT', name: 'BadArgumentError' })
  await assert.rejects(log.get(-1), { code: 'BAD_ARGUMENT' })
  await assert.rejects(log.get(1.5), { code: 'BAD_ARGUMENT' })
})

test('list and the async iterator stream entries in order', async (t) => {
  const { log } = await createLog(t)
  const pending = []
  for (let i = 0; i < 1200; i++) pending.push(log.append({ i }))
  const seqs = await Promise.all(pending)
  assert.deepEqual(seqs, Array.from({ length: 1200 }, (_, i) => i + 1), 'concurrent appends keep call order')
  assert.equal(log.length, 1201)
  const some = await log.list({ start: 10, end: 13 })
  assert.deepEqual(some, [{ i: 9 }, { i: 10 }, { i: 11 }])
  let n = 0
  for await (const entry of log) {
    if (n > 0) assert.deepEqual(entry, { i: n - 1 })
    n++
  }
  assert.equal(n, 1201)
  assert.equal((await log.list()).length, 1201)
  assert.deepEqual(await log.list({ start: 1199, end: 5000 }), [{ i: 1198 }, { i: 1199 }])
})

test('reopen after close keeps every entry and appends continue', async (t) => {
  const dir = path.join(tmpdir(t), 'log')
  const log = await CallLog.create(dir, 'code', 'dat://' + '00'.repeat(32))
  const url = log.url
  for (let i = 0; i < 10; i++) await log.appendCall({ methodName: 'm', args: [i], res: i, filesVersion: 1 })
  await log.close()
  await log.close() // idempotent

  const again = await CallLog.open(dir)
  t.after(() => again.close())
  assert.equal(again.url, url)
  assert.equal(again.length, 11)
  assert.equal(again.writable, true)
  assert.equal((await again.get(10)).result.res, 9)
  assert.equal(await again.append({ more: true }), 11)
  assert.equal(await again.verify(), true)
})

test('get past the end is an error, or waits when asked to', async (t) => {
  const { log } = await createLog(t)
  await assert.rejects(log.get(1), (e) => e instanceof errors.OutOfBoundsError && e.code === 'OUT_OF_BOUNDS')
  await assert.rejects(log.get(5, { wait: true, timeout: 20 }), { code: 'TIMEOUT', name: 'TimeoutError' })
  const waiting = log.get(1, { wait: true })
  await log.append({ late: true })
  assert.deepEqual(await waiting, { late: true })
})

test('values that are not JSON are refused and nothing is written', async (t) => {
  const { log } = await createLog(t)
  const cyclic = {}; cyclic.self = cyclic
  await assert.rejects(log.append({ big: 1n }), { code: 'ENCODING_ERROR', name: 'EncodingError' })
  await assert.rejects(log.append(cyclic), { code: 'ENCODING_ERROR' })
  await assert.rejects(log.append(() => 1), { code: 'ENCODING_ERROR' })
  await assert.rejects(log.appendCall({ methodName: 'f', args: [], res: 2n, filesVersion: 1 }), { code: 'ENCODING_ERROR' })
  assert.equal(log.length, 1)
})

test('calls after close fail with ClosedError', async (t) => {
  const { log } = await createLog(t)
  await log.close()
  assert.equal(log.closed, true)
  await assert.rejects(log.append({}), { code: 'CLOSED', name: 'ClosedError' })
  await assert.rejects(log.get(0), { code: 'CLOSED' })
  await assert.rejects(log.list(), { code: 'CLOSED' })
  await assert.rejects(log.verify(), { code: 'CLOSED' })
  assert.throws(() => log.url, { code: 'CLOSED' })
})

test('a second open of the same directory is refused, from this process and another', async (t) => {
  const { dir, log } = await createLog(t)
  await assert.rejects(CallLog.open(dir), { code: 'STORAGE_LOCKED', name: 'StorageLockedError' })
  const child = spawnSync(process.execPath, ['-e', `
    const { CallLog } = require(${JSON.stringify(path.join(__dirname, '..'))})
    CallLog.open(${JSON.stringify(dir)}).then(() => process.exit(0), (e) => { console.log(e.code); process.exit(3) })
  `], { encoding: 'utf8' })
  assert.equal(child.status, 3)
  assert.equal(child.stdout.trim(), 'STORAGE_LOCKED')
  assert.equal(log.length, 1, 'the first handle still works')
  await log.append({ ok: 1 })
  await log.close()
  const again = await CallLog.open(dir) // released on close
  await again.close()
})

test('creating over an existing log is refused and loses nothing', async (t) => {
  const { dir, log } = await createLog(t)
  await log.append({ keep: 1 })
  await log.close()
  await assert.rejects(CallLog.create(dir, 'other', 'dat://' + '22'.repeat(32)))
  const again = await CallLog.open(dir)
  t.after(() => again.close())
  assert.equal(again.length, 2)
  assert.equal((await again.get(0)).code, 'exports.f = v => v + 1')
})

test('a directory that is not a call log is refused with a code', async (t) => {
  const empty = tmpdir(t)
  await assert.rejects(CallLog.open(empty), { code: 'NOT_A_CORE', name: 'NotACoreError' })
  await assert.rejects(CallLog.open(path.join(empty, 'missing')), { code: 'NOT_A_CORE' })
  const junk = tmpdir(t)
  fs.writeFileSync(path.join(junk, 'oplog'), Buffer.alloc(9000, 7))
  await assert.rejects(CallLog.open(junk), (e) => ['STORAGE_CORRUPT', 'NOT_A_CORE'].includes(e.code))
  await assert.rejects(CallLog.open(''), { code: 'BAD_ARGUMENT' })
  await assert.rejects(CallLog.open(42), { code: 'BAD_ARGUMENT' })
})

test('a flipped byte in the data file is detected on read and by verify', async (t) => {
  const { dir, log } = await createLog(t)
  for (let i = 0; i < 20; i++) await log.append({ i, pad: 'x'.repeat(10) })
  await log.close()
  flipByte(path.join(dir, 'data'), -3) // inside the last entry
  const again = await CallLog.open(dir)
  t.after(() => again.close())
  assert.deepEqual(await again.get(3), { i: 2, pad: 'x'.repeat(10) }, 'intact entries still read')
  await assert.rejects(again.get(20), (e) => e.code === 'VERIFICATION_FAILED' && e.name === 'IntegrityError' && e.index === 20)
  await assert.rejects(again.verify(), (e) => e.code === 'VERIFICATION_FAILED' && e.index === 20)
  await assert.rejects(again.list(), { code: 'VERIFICATION_FAILED' })
})

test('a torn write at the end of the oplog is dropped on open, acknowledged entries survive', async (t) => {
  const { dir, log } = await createLog(t)
  for (let i = 0; i < 5; i++) await log.append({ i })
  await log.close()
  fs.appendFileSync(path.join(dir, 'oplog'), Buffer.from([0x12, 0x34, 0x56, 0x78, 0x40, 0x00, 0x00, 0x00, 1, 2, 3]))
  const again = await CallLog.open(dir)
  t.after(() => again.close())
  assert.equal(again.length, 6)
  assert.deepEqual(await again.get(5), { i: 4 })
  await again.append({ after: true })
  assert.equal(await again.verify(), true)
})

test('a panic inside the addon becomes an InternalError, never an abort', () => {
  const native = require('../lib/native')
  let caught
  try { errors.wrapNative(() => native.__panicForTest('boom')) } catch (e) { caught = e }
  assert.ok(caught instanceof errors.InternalError)
  assert.equal(caught.code, 'INTERNAL')
  assert.match(caught.message, /boom/)
})

test('the addon exports the one error list; codes and class names are stable', () => {
  const native = require('../lib/native')
  // Pinned: renaming a code or a class breaks callers that match on err.code, err.name or instanceof.
  const stable = {
    IO_ERROR: 'StorageIOError', STORAGE_LOCKED: 'StorageLockedError', STORAGE_CORRUPT: 'StorageCorruptError',
    NOT_A_CORE: 'NotACoreError', VERIFICATION_FAILED: 'IntegrityError', INVALID_SIGNATURE: 'InvalidSignatureError',
    OUT_OF_BOUNDS: 'OutOfBoundsError', NOT_WRITABLE: 'NotWritableError', CLOSED: 'ClosedError',
    BAD_ARGUMENT: 'BadArgumentError', ENCODING_ERROR: 'EncodingError', INVALID_PROOF: 'InvalidProofError',
    INTERNAL: 'InternalError', NOT_FOUND: 'NotFoundError', ENTRY_ALREADY_EXISTS: 'EntryAlreadyExistsError',
    PARENT_FOLDER_DOESNT_EXIST: 'ParentFolderDoesntExistError', INVALID_PATH: 'InvalidPathError',
    ARCHIVE_NOT_WRITABLE: 'ArchiveNotWritableError', DEST_DIRECTORY_NOT_EMPTY: 'DestDirectoryNotEmpty',
    INVALID_ENCODING: 'InvalidEncodingError', VERIFICATION_MISMATCH: 'VerificationError', TIMEOUT: 'TimeoutError',
    CONNECTION_FAILED: 'ConnectionError', LIMIT_EXCEEDED: 'LimitError', FORK: 'ForkError'
  }
  const list = native.errorClasses()
  assert.deepEqual(Object.fromEntries(list.map((c) => [c.code, c.className])), stable)
  for (const { code, className } of list) {
    const e = errors.errorFor(code, 'x')
    assert.equal(e.code, code)
    assert.equal(e.name, className)
    assert.ok(e instanceof errors[className] && e instanceof errors.LibvmsError && e instanceof Error)
  }
  assert.deepEqual(errors.CODES, list.map((c) => c.code))
})

test('a native error carries its code as data, not as text in its message', async (t) => {
  const native = require('../lib/native')
  const net = require('node:net')
  // Sync: the raw error's cause holds {code, message}; the class is built from that, with the bare message.
  let raw
  try { native.NativeLog.open(path.join(tmpdir(t), 'missing')) } catch (e) { raw = e }
  assert.deepEqual(JSON.parse(raw.cause.message), { code: 'NOT_A_CORE', message: raw.message.replace(/^NOT_A_CORE: /, '') })
  const sync = errors.fromNative(raw)
  assert.ok(sync instanceof errors.NotACoreError)
  assert.equal(sync.message, JSON.parse(raw.cause.message).message)
  // Async (a promise napi rejects): the same, for a peer that refuses (a port just freed).
  const probe = net.createServer()
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const port = probe.address().port
  await new Promise((resolve) => probe.close(resolve))
  const peers = [`127.0.0.1:${port}`]
  await assert.rejects(native.fetchLog('ab'.repeat(32), null, peers, 2000), (e) => JSON.parse(e.cause.message).code === 'CONNECTION_FAILED')
  const async = await errors.wrapNative(() => native.fetchLog('ab'.repeat(32), null, peers, 2000)).catch((e) => e)
  assert.ok(async instanceof errors.ConnectionError && async.code === 'CONNECTION_FAILED', String(async))
  assert.doesNotMatch(async.message, /^CONNECTION_FAILED/)
  // A foreign error whose message merely looks like `CODE: message` stays what it is.
  const lookalike = new Error('STORAGE_CORRUPT: not ours')
  assert.equal(errors.fromNative(lookalike), lookalike)
  assert.throws(() => errors.wrapNative(() => { throw lookalike }), (x) => x === lookalike)
})

test('sequential gets read ahead and stay exact: non-ASCII entries, runs crossing appends, encodings', async (t) => {
  const { log } = await createLog(t)
  const value = (i) => ({ i, text: i % 7 === 0 ? `héllo ✓ ${i}` : `plain ${i}` })
  for (let i = 1; i < 150; i++) await log.append(value(i))
  for (let i = 1; i < 150; i++) assert.deepEqual(await log.get(i), value(i))
  // The log grows past the last read-ahead run: later gets see the new entries.
  await log.append(value(150))
  assert.deepEqual(await log.get(150), value(150))
  for (let i = 100; i <= 150; i++) {
    assert.equal(await log.get(i, { valueEncoding: 'utf-8' }), JSON.stringify(value(i)))
    assert.deepEqual(JSON.parse((await log.get(i, { valueEncoding: 'binary' })).toString()), value(i))
  }
})
