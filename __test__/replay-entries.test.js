'use strict'
// A replay's fast path for oracle records (lib/replay-entries.js): a call entry's `oracles` stay the log's text (to
// the worker, and into the replica's entry as they are). Divergences must be caught on that path as on the slow one.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

const { VM, CallLog, Verifier, errors } = require('..')
const { parseEntry } = require('../lib/replay-entries')
const { RECORDS } = require('../lib/sandbox/oracles')
const { tmpdir } = require('./helpers')

const parse = (text) => { const b = Buffer.from(text); return parseEntry(b, 0, b.length, 7) }

test('parseEntry leaves a call entry\'s last member "oracles" as text, and parses anything else whole', () => {
  const records = '[{"api":"ext","method":"get","args":[1],"value":{"a":[1,2]}},{"api":"ext","method":"get","args":["]}"]}]'
  const head = '{"type":"call","call":{"methodName":"f","args":[1]},"result":{"filesVersion":1,"res":2},"time":5'
  const fast = parse(head + ',"oracles":' + records + '}')
  assert.equal(JSON.stringify(fast), JSON.stringify(JSON.parse(head + '}')))
  assert.equal(fast.oracles, undefined)
  assert.equal(fast[RECORDS].rawJSON, records)
  assert.equal(fast[RECORDS].original.head, head + '}')

  // Whole: "oracles" not last; nested in the arguments only; twice at the top level; a limit stop; not a call.
  const whole = [
    '{"type":"call","call":{"methodName":"f","args":[]},"result":{"filesVersion":1},"oracles":[{"api":"a","method":"b","args":[]}],"time":5}',
    '{"type":"call","call":{"methodName":"f","args":[{"x":1,"oracles":[2]}]},"result":{"filesVersion":1}}',
    '{"type":"call","call":{"methodName":"f","args":[]},"result":{"filesVersion":1},"oracles":[1],"oracles":[2]}',
    '{"type":"call","call":{"methodName":"f","args":[]},"result":{"filesVersion":1,"err":"LimitError"},"stopped":"callTimeoutMs","oracles":[1]}',
    '{"type":"restart","oracles":[1]}',
    '{"type":"call","call":{"methodName":"f","args":["a,\\"oracles\\":[1]"]},"result":{"filesVersion":1,"res":[1]}}'
  ]
  for (const text of whole) {
    const e = parse(text)
    assert.deepEqual(e, JSON.parse(text), text)
    assert.equal(e[RECORDS], undefined, text)
  }
  // Not JSON at all: named as entries() names it.
  assert.throws(() => parse('{"type":"call",'), (e) => e instanceof errors.EncodingError && e.index === 7 && /entry 7 is not JSON/.test(e.message))
})

/** A host log with oracle uses, and a copy of it whose entry 2 is `edit(text)` (other entries as they are). */
async function hostAndCopy (t, edit) {
  const root = tmpdir(t)
  const vm = new VM('exports.f = async (a) => [await System.ext.get(a), await System.ext.get(a + 1)]')
  vm.addAPI('ext', { get: (x) => ({ v: x * 10, s: 'é' }) })
  await vm.deploy({ dir: path.join(root, 'host') })
  t.after(() => vm.close())
  for (const a of [1, 5, 9]) await vm.executeCall({ methodName: 'f', args: [a] })
  const init = await vm.callLog.get(0)
  const copy = await CallLog.create(path.join(root, 'copy'), init.code, init.filesArchiveUrl, { deterministic: init.deterministic, apis: init.apis })
  t.after(() => copy.close())
  for (let i = 1; i < vm.callLog.length; i++) {
    const text = await vm.callLog.get(i, { valueEncoding: 'utf-8' })
    await copy._enqueueBlock(Buffer.from(i === 2 ? edit(text) : text))
  }
  return { vm, copy, url: init.filesArchiveUrl }
}

async function texts (log) {
  const out = []
  for (let i = 1; i < log.length; i++) out.push(await log.get(i, { valueEncoding: 'utf-8' }))
  return out
}

test('a replay writes the records as the log holds them: its own bytes when the call reproduced its entry', async (t) => {
  // Records laid out otherwise than libvms writes them (spaces, an escaped letter): still served, still the same.
  const { copy, url } = await hostAndCopy(t, (text) => text.replace('"oracles":[{"api":"ext"', '"oracles":[ {"api" : "\\u0065xt"'))
  assert.match(await copy.get(2, { valueEncoding: 'utf-8' }), /"oracles":\[ \{"api" : "\\u0065xt"/)
  const replica = await VM.fromCallLog(copy, { filesArchiveUrl: url })
  t.after(() => replica.close())
  assert.deepEqual(await texts(replica.callLog), await texts(copy))
  await Verifier.compareLogs(copy, replica.callLog)
})

test('on the fast path, a replay whose result differs from its entry is still caught (the entry is written anew)', async (t) => {
  const { copy, url } = await hostAndCopy(t, (text) => text.replace('"res":[{"v":50', '"res":[{"v":51'))
  const replica = await VM.fromCallLog(copy, { filesArchiveUrl: url })
  t.after(() => replica.close())
  const [, second] = await texts(replica.callLog)
  // The replica's entry holds what the replay returned, with the log's records.
  assert.equal(JSON.parse(second).result.res[0].v, 50)
  assert.deepEqual(JSON.parse(second).oracles, (await copy.get(2)).oracles)
  await assert.rejects(Verifier.compareLogs(copy, replica.callLog), (e) => e instanceof errors.VerificationError && e.index === 2)
})

test('on the fast path, records that are tampered with, missing, or not JSON stop the replay at their entry', async (t) => {
  const cases = [
    [(text) => text.replace('"args":[6]', '"args":[7]'), errors.VerificationError, /entry 2, oracle use 1: the log recorded System\.ext\.get\(7\), the replay asked for System\.ext\.get\(6\)/],
    [(text) => text.replace(/,\{"api":"ext","method":"get","args":\[6\],"value":\{[^}]*\}\}/, ''), errors.VerificationError, /entry 2, oracle use 1: the log recorded nothing, the replay asked for System\.ext\.get\(6\)/],
    [(text) => text.replace('"args":[6]', '"args":[6'), errors.EncodingError, /entry 2 is not JSON/]
  ]
  for (const [edit, Class, message] of cases) {
    const { copy, url } = await hostAndCopy(t, edit)
    const err = await VM.fromCallLog(copy, { filesArchiveUrl: url }).then(() => null, (e) => e)
    assert.ok(err instanceof Class, String(err))
    assert.match(err.message, message)
    assert.equal(err.index, 2)
  }
})

test('a call with one record is served from its text (the usual entry); anything else there falls back and is named', async (t) => {
  const root = tmpdir(t)
  const vm = new VM(`exports.f = async (a) => { try { const v = await System.ext.get(a); return [typeof v, Buffer.isBuffer(v) ? v.toString('hex') : v] } catch (e) { return [e.name, e.message, e.code] } }`)
  vm.addAPI('ext', { get: (a) => a === 0 ? undefined : a === 1 ? Buffer.from([1, 255]) : a === 2 ? { s: '}]x', n: [a] } : a === 3 ? Promise.reject(new errors.BadArgumentError('three')) : a * 10 })
  await vm.deploy({ dir: path.join(root, 'host') })
  t.after(() => vm.close())
  const results = []
  for (const a of [0, 1, 2, 3, 4]) results.push(await vm.executeCall({ methodName: 'f', args: [a] }))
  assert.deepEqual(results, [['undefined', null], ['object', '01ff'], ['object', { s: '}]x', n: [2] }], ['BadArgumentError', 'three', 'BAD_ARGUMENT'], ['number', 40]])
  const replica = await VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url })
  t.after(() => replica.close())
  assert.deepEqual(await texts(replica.callLog), await texts(vm.callLog))

  // Entry 5 (args [4]) edited: its one record's value, its arguments, or a second record after it.
  const init = await vm.callLog.get(0)
  const cases = [
    [(text) => text.replace('"value":40}]', '"value":41}]'), null],
    [(text) => text.replace('"args":[4],"value"', '"args":[5],"value"'), /entry 5, oracle use 0: the log recorded System\.ext\.get\(5\), the replay asked for System\.ext\.get\(4\)/],
    [(text) => text.replace('"value":40}]', '"value":40},{"api":"ext","method":"get","args":[4],"value":40}]'), /entry 5, oracle use 1: the log recorded System\.ext\.get\(4\), the replay asked for nothing/]
  ]
  for (const [i, [edit, message]] of cases.entries()) {
    const copy = await CallLog.create(path.join(root, 'copy' + i), init.code, init.filesArchiveUrl, { deterministic: init.deterministic, apis: init.apis })
    t.after(() => copy.close())
    for (let j = 1; j < vm.callLog.length; j++) {
      const text = await vm.callLog.get(j, { valueEncoding: 'utf-8' })
      await copy._enqueueBlock(Buffer.from(j === 5 ? edit(text) : text))
    }
    assert.notEqual(await copy.get(5, { valueEncoding: 'utf-8' }), await vm.callLog.get(5, { valueEncoding: 'utf-8' }))
    const out = await VM.fromCallLog(copy, { filesArchiveUrl: init.filesArchiveUrl }).then((r) => r, (e) => e)
    if (message) {
      assert.ok(out instanceof errors.VerificationError, String(out))
      assert.match(out.message, message)
      assert.equal(out.index, 5)
      continue
    }
    // Served the edited value: the replay's result differs, and the comparison names the entry.
    t.after(() => out.close())
    assert.deepEqual(JSON.parse((await texts(out.callLog))[4]).result.res, ['number', 41])
    await assert.rejects(Verifier.compareLogs(copy, out.callLog), (e) => e instanceof errors.VerificationError && e.index === 5)
  }
})

test('a served value is what JSON.parse makes of the record\'s text: numbers read on the fast path included', async (t) => {
  const root = tmpdir(t)
  const vm = new VM('exports.f = async (a) => { const v = await System.ext.n(a); return [v, Object.is(v, -0)] }')
  vm.addAPI('ext', { n: (a) => a })
  await vm.deploy({ dir: path.join(root, 'host') })
  t.after(() => vm.close())
  const values = [0, 7, -5, 123456789012345, -999999999999999, 1234567890123456, 1.5, 2e21, -0.25]
  for (const a of values) await vm.executeCall({ methodName: 'f', args: [a] })
  const replica = await VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url })
  t.after(() => replica.close())
  assert.deepEqual(await texts(replica.callLog), await texts(vm.callLog))

  // Entry 2 (a = 7) with its value's text edited: served as JSON.parse reads it, or named as not JSON.
  const init = await vm.callLog.get(0)
  const cases = [['-0', [0, true]], ['12345678901234567', [12345678901234568, false]], ['1E2', [100, false]], ['-12', [-12, false]],
    ['007', null], ['-', null], ['1-2', null], ['+1', null], ['0x10', null], ['1.', null]]
  for (const [i, [value, served]] of cases.entries()) {
    const copy = await CallLog.create(path.join(root, 'copy' + i), init.code, init.filesArchiveUrl, { deterministic: init.deterministic, apis: init.apis })
    t.after(() => copy.close())
    for (let j = 1; j < vm.callLog.length; j++) {
      const text = await vm.callLog.get(j, { valueEncoding: 'utf-8' })
      await copy._enqueueBlock(Buffer.from(j === 2 ? text.replace('"value":7}]', `"value":${value}}]`) : text))
    }
    const out = await VM.fromCallLog(copy, { filesArchiveUrl: init.filesArchiveUrl }).then((r) => r, (e) => e)
    if (served === null) {
      assert.ok(out instanceof errors.EncodingError, `${value}: ${out}`)
      assert.match(out.message, /entry 2 is not JSON/)
      continue
    }
    t.after(() => out.close())
    assert.deepEqual(JSON.parse((await texts(out.callLog))[1]).result.res, served, value)
  }
})
