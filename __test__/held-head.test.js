'use strict'
// An audit's snapshot is a signed tree head it holds (length, fork, tree hash, the log key's signature): the replay
// covers exactly 0..L-1 under it, the report names it, and a log that later holds another tree at that length
// (its key signed two histories) is caught as a fork, with both heads.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { VM, CallLog, Verifier } = require('..')
const { cli } = require('./cli-helpers')
const { tmpdir } = require('./helpers')

const CODE = 'let n = 0\nexports.inc = (by = 1) => { n += by; return n }\n'

/** A stopped VM with `calls` logged incs, and a writable copy of it at `copyDir` (same key: a fork in the making). */
async function vmWithCopy (t, calls) {
  const base = tmpdir(t)
  const dir = path.join(base, 'vm')
  const vm = await new VM(CODE).deploy({ dir })
  for (let i = 0; i < calls; i++) await vm.executeCall({ methodName: 'inc', args: [1] })
  const filesArchiveUrl = vm.filesArchive.url
  await vm.close()
  const copy = path.join(base, 'copy')
  fs.cpSync(dir, copy, { recursive: true })
  return { dir, copy, filesArchiveUrl }
}

test('a held head: checked against the key, kept by the same log, a fork when another history is signed', async (t) => {
  const { dir, copy } = await vmWithCopy(t, 3)
  const a = await CallLog.open(path.join(dir, 'call-log'))
  const b = await CallLog.open(path.join(copy, 'call-log'))
  t.after(async () => { await a.close(); await b.close() })
  const start = await Verifier.signedHead(a)
  assert.equal(start.length, a.length)
  assert.match(start.treeHash, /^[0-9a-f]{64}$/)
  assert.deepEqual(await Verifier.signedHead(b), start, 'a byte copy holds the same head')

  // Both copies write on with the same key: one history each.
  await a.append({ type: 'call', call: { methodName: 'inc', args: [1] }, result: { filesVersion: 1, res: 'A' } })
  await b.append({ type: 'call', call: { methodName: 'inc', args: [1] }, result: { filesVersion: 1, res: 'B' } })
  const headA = await Verifier.signedHead(a)
  const headB = await Verifier.signedHead(b)
  assert.equal(headA.length, headB.length)

  await Verifier.checkHead(start, a) // a longer log still holds the held head's tree
  await Verifier.checkHead(headA, a)
  await assert.rejects(Verifier.checkHead(headA, b), (e) => {
    assert.equal(e.name, 'ForkError')
    assert.deepEqual(e.theirs, headA)
    assert.deepEqual(e.ours, headB)
    assert.equal(Verifier.isFork(a.key, e.ours, e.theirs), true, 'the two heads prove it')
    return true
  })
  // A head the log's key did not sign, and a head past what the log holds now, are refused.
  await assert.rejects(Verifier.checkHead({ ...headA, signature: headA.signature.replace(/^./, (c) => c === '0' ? '1' : '0') }, a),
    { name: 'VerificationError', message: /not signed by this log's key/ })
  await assert.rejects(Verifier.checkHead({ ...headA, length: headA.length + 5 }, a), { name: 'VerificationError' })
})

test('VM.fromCallLog holds a signed head: replays 0..L-1 under it and names it; another history is a ForkError', async (t) => {
  const { dir, copy, filesArchiveUrl } = await vmWithCopy(t, 3)
  const a = await CallLog.open(path.join(dir, 'call-log'))
  t.after(() => a.close())
  const held = await Verifier.signedHead(a)
  const replica = await VM.fromCallLog(a, { filesArchiveUrl }, { head: held })
  assert.deepEqual(replica.replayedHead, held)
  assert.equal(replica.callLog.length, held.length)
  await replica.close()
  // Without a head, the log's head then is held.
  const plain = await VM.fromCallLog(a, { filesArchiveUrl }, { length: 2 })
  assert.deepEqual(plain.replayedHead, held)
  assert.equal(plain.callLog.length, 2)
  await plain.close()

  // The copy, written on with the same key, holds another tree at the held length: refused before any replay.
  const b = await CallLog.open(path.join(copy, 'call-log'))
  t.after(() => b.close())
  await b.append({ type: 'restart' })
  const forked = await Verifier.signedHead(b)
  await a.append({ type: 'restart', code: CODE })
  await assert.rejects(VM.fromCallLog(a, { filesArchiveUrl }, { head: forked }), { name: 'ForkError' })
  await assert.rejects(VM.fromCallLog(a, { filesArchiveUrl }, { head: held, length: held.length + 1 }), { name: 'BadArgumentError' })
})

test('libvms verify names the signed head it held, in its report and its --json summary', async (t) => {
  const { dir } = await vmWithCopy(t, 2)
  const log = await CallLog.open(path.join(dir, 'call-log'))
  const head = await Verifier.signedHead(log)
  await log.close()
  const r = await cli(['verify', dir])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.match(r.stdout, new RegExp(`held signed head: length ${head.length}, fork ${head.fork}, tree hash ${head.treeHash} \\(checked against the log's key\\)`))
  assert.match(r.stdout, new RegExp(`✓ Signed head at length ${head.length} still held by the log`))
  const j = await cli(['verify', dir, '--json'])
  assert.equal(j.code, 0, j.stderr)
  assert.deepEqual(JSON.parse(j.stdout).head, head)
})
