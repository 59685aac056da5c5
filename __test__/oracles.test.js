'use strict'
// Oracles (addAPI uses recorded in the call's entry, served from the log on replay) and deterministic execution
// (Math.random seeded from the log, Date the call's logged time).
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { VM, CallLog, Verifier, errors } = require('..')
const { tmpdir } = require('./helpers')
const { cli } = require('./cli-helpers')

/** The raw text of every entry of `log`. */
async function texts (log) {
  const out = []
  for (let i = 0; i < log.length; i++) out.push(await log.get(i, { valueEncoding: 'utf-8' }))
  return out
}

/** A copy of `log` (a new log: same init, the later entries passed through `edit(entry, index)`). */
async function copyLog (log, dir, edit) {
  const init = await log.get(0)
  const copy = await CallLog.create(dir, init.code, init.filesArchiveUrl, { auth: init.auth, deterministic: init.deterministic, apis: init.apis })
  assert.equal(await copy.get(0, { valueEncoding: 'utf-8' }), await log.get(0, { valueEncoding: 'utf-8' }))
  for (let i = 1; i < log.length; i++) await copy.append(edit(await log.get(i), i))
  return copy
}

test('entries of calls that use no oracle and read no clock stay byte for byte as before; others add time and oracles', async (t) => {
  const vm = new VM(`
    let n = 0
    exports.inc = (by) => (n += by)
    exports.roll = () => Math.random() < 2
    exports.now = () => Date.now() > 0
    exports.ask = async () => [await System.ext.id(7), await System.ext.none()]`)
  vm.addAPI('ext', { id: (x) => x, none: () => {} })
  await vm.deploy({ dir: path.join(tmpdir(t), 'vm') })
  t.after(() => vm.close())
  await vm.executeCall({ methodName: 'inc', args: [1], userId: 'alice' })
  await vm.executeCall({ methodName: 'roll' })
  await assert.rejects(vm.executeCall({ methodName: 'nope' }), TypeError)
  await vm.executeCall({ methodName: 'now' })
  await vm.executeCall({ methodName: 'ask' })
  const all = await texts(vm.callLog)
  assert.equal(all[0], JSON.stringify({ type: 'init', code: vm.code, filesArchiveUrl: vm.filesArchive.url, deterministic: true, apis: { ext: ['id', 'none'] } }))
  // Exactly the bytes libvms wrote before oracles existed (Math.random is seeded, not recorded).
  assert.equal(all[1], '{"type":"call","call":{"methodName":"inc","args":[1],"userId":"alice"},"result":{"filesVersion":1,"res":1}}')
  assert.equal(all[2], '{"type":"call","call":{"methodName":"roll","args":[]},"result":{"filesVersion":1,"res":true}}')
  assert.equal(all[3], '{"type":"call","call":{"methodName":"nope","args":[]},"result":{"filesVersion":1,"err":"TypeError"}}')
  const time = JSON.parse(all[4]).time
  assert.ok(Number.isSafeInteger(time) && time > 0)
  assert.equal(all[4], `{"type":"call","call":{"methodName":"now","args":[]},"result":{"filesVersion":1,"res":true},"time":${time}}`)
  assert.equal(all[5], '{"type":"call","call":{"methodName":"ask","args":[]},"result":{"filesVersion":1,"res":[7,null]},' +
    '"oracles":[{"api":"ext","method":"id","args":[7],"value":7},{"api":"ext","method":"none","args":[]}]}')
})

test('a replay of thousands of oracle uses never runs the host method and reproduces the log', async (t) => {
  const root = tmpdir(t)
  const vm = new VM(`
    exports.sum = async (n) => {
      let s = 0
      for (let i = 0; i < n; i++) s += (await System.ext.next(i)).v
      // Overlapping uses: numbered as made, answered in that order.
      const both = await Promise.all([System.ext.next(-1), System.ext.boom('x')].map((p) => p.catch((e) => e.name + ':' + e.message + ':' + e.code)))
      return [s, both]
    }`)
  let invoked = 0
  vm.addAPI('ext', {
    next: async (i) => { invoked++; await new Promise((resolve) => setTimeout(resolve, i === -1 ? 5 : 0)); return { v: i * 2 + Math.floor(Math.random() * 3) } },
    boom: (x) => { invoked++; throw new errors.BadArgumentError('no ' + x) }
  })
  await vm.deploy({ dir: path.join(root, 'host') })
  t.after(() => vm.close())
  const results = []
  for (let c = 0; c < 60; c++) results.push(await vm.executeCall({ methodName: 'sum', args: [50] }))
  assert.equal(invoked, 60 * 52)
  assert.deepEqual(results[0][1].slice(1), ['BadArgumentError:no x:BAD_ARGUMENT'])
  const entry = await vm.callLog.get(1)
  assert.equal(entry.oracles.length, 52)
  assert.deepEqual(entry.oracles[51], { api: 'ext', method: 'boom', args: ['x'], error: { name: 'BadArgumentError', message: 'no x', code: 'BAD_ARGUMENT' } })

  const before = invoked
  const replica = await VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url }, { dir: path.join(root, 'replica') })
  t.after(() => replica.close())
  assert.equal(invoked, before, 'no host invocation during the replay')
  await Verifier.compareLogs(vm.callLog, replica.callLog)
  assert.deepEqual(await texts(replica.callLog).then((a) => a.slice(1)), await texts(vm.callLog).then((a) => a.slice(1)))
})

test('a result JSON cannot hold is an EncodingError for the script, recorded as such; uses outside a call are refused', async (t) => {
  const vm = new VM(`
    let early
    System.ext.big().catch((e) => { early = e.message })
    exports.f = async () => { try { await System.ext.big() } catch (e) { return [e.name, e.code, early] } }`)
  vm.addAPI('ext', { big: () => 10n })
  await vm.deploy({ dir: path.join(tmpdir(t), 'vm') })
  t.after(() => vm.close())
  const [name, code, early] = await vm.executeCall({ methodName: 'f' })
  assert.deepEqual([name, code], ['EncodingError', 'ENCODING_ERROR'])
  assert.match(early, /System\.ext\.big is only allowed during a call/)
  const { oracles } = await vm.callLog.get(1)
  assert.equal(oracles[0].error.name, 'EncodingError')
  const replica = await VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url })
  t.after(() => replica.close())
  await Verifier.compareLogs(vm.callLog, replica.callLog)
})

test('a tampered, a reordered, a missing and an extra oracle record, and a removed time, are named by the replay', async (t) => {
  const root = tmpdir(t)
  const vm = new VM(`exports.f = async (a) => [await System.ext.get(a), await System.ext.get(a + 1), Date.now()]`)
  vm.addAPI('ext', { get: (x) => x * 10 })
  await vm.deploy({ dir: path.join(root, 'host') })
  await vm.executeCall({ methodName: 'f', args: [1] })
  await vm.executeCall({ methodName: 'f', args: [5] })
  await vm.close()
  const host = await CallLog.open(path.join(root, 'host', 'call-log'))
  t.after(() => host.close())
  const url = (await host.get(0)).filesArchiveUrl

  const cases = {
    tampered: [(e) => { e.oracles[1].args = [7]; return e }, /entry 2, oracle use 1: the log recorded System\.ext\.get\(7\), the replay asked for System\.ext\.get\(6\)/, 1],
    reordered: [(e) => { e.oracles.reverse(); return e }, /entry 2, oracle use 0: the log recorded System\.ext\.get\(6\), the replay asked for System\.ext\.get\(5\)/, 0],
    missing: [(e) => { e.oracles.pop(); return e }, /entry 2, oracle use 1: the log recorded nothing, the replay asked for System\.ext\.get\(6\)/, 1],
    extra: [(e) => { e.oracles.push({ api: 'ext', method: 'get', args: [9], value: 90 }); return e }, /entry 2, oracle use 2: the log recorded System\.ext\.get\(9\), the replay asked for nothing/, 2],
    untimed: [(e) => { delete e.time; return e }, /entry 2: the replay read the clock, the host's call did not/, undefined]
  }
  for (const [name, [edit, message, use]] of Object.entries(cases)) {
    const copy = await copyLog(host, path.join(root, name), (e, i) => i === 2 ? edit(e) : e)
    const err = await VM.fromCallLog(copy, { filesArchiveUrl: url }).then(() => null, (e) => e)
    await copy.close()
    assert.ok(err instanceof errors.VerificationError, `${name}: ${err}`)
    assert.equal(err.code, 'VERIFICATION_MISMATCH')
    assert.match(err.message, message, name)
    assert.equal(err.index, 2, name)
    assert.equal(err.use, use, name)
  }

  // Through the command line: exit 1, with the entry and the use named.
  const dir = path.join(root, 'tampered-vm')
  fs.cpSync(path.join(root, 'host'), dir, { recursive: true })
  fs.rmSync(path.join(dir, 'call-log'), { recursive: true })
  const copy = await copyLog(host, path.join(dir, 'call-log'), (e, i) => { if (i === 1) e.oracles.reverse(); return e })
  await copy.close()
  const r = await cli(['verify', dir])
  assert.equal(r.code, 1, r.stdout + r.stderr)
  assert.match(r.stdout + r.stderr, /entry 1, oracle use 0: the log recorded System\.ext\.get\(2\), the replay asked for System\.ext\.get\(1\)/)
})

test('Math.random and Date: deterministic by default, and such a VM verifies with libvms verify; opting out does not', async (t) => {
  const root = tmpdir(t)
  const code = `
    const loaded = Math.random()
    exports.init = async () => { await System.files.writeFile('/init', String(Math.random())) }
    exports.roll = async () => {
      const r = [Math.random(), Math.random()]
      const d = [Date.now(), new Date().getTime(), Date.parse(Date()) <= Date.now(), new Date(5).getTime(), new Date() instanceof Date]
      await new Promise((resolve) => setTimeout(resolve, 20))
      const later = Date.now()
      await System.files.writeFile('/roll-' + r[0], JSON.stringify({ r, d, later, loaded }))
      return { r, d, same: later === d[0] }
    }`
  const dirs = {}
  for (const deterministic of [true, false]) {
    const dir = dirs[deterministic] = path.join(root, String(deterministic))
    const vm = new VM(code, { deterministic })
    await vm.deploy({ dir })
    const a = await vm.executeCall({ methodName: 'roll' })
    const b = await vm.executeCall({ methodName: 'roll' })
    assert.notEqual(a.r[0], b.r[0])
    assert.notEqual(a.r[0], a.r[1])
    assert.equal(a.d[3], 5)
    assert.equal(a.d[4], true)
    if (deterministic) {
      // One clock per call: every read sees the call's time, which the entry holds.
      assert.equal(a.d[0], a.d[1])
      assert.equal(a.same, true)
      assert.equal((await vm.callLog.get(2)).time, a.d[0])
      assert.equal((await vm.callLog.get(0)).deterministic, true)
    } else {
      assert.equal((await vm.callLog.get(0)).deterministic, undefined)
      assert.equal((await vm.callLog.get(2)).time, undefined)
    }
    await vm.close()
  }
  const ok = await cli(['verify', dirs.true])
  assert.equal(ok.code, 0, ok.stdout + ok.stderr)
  assert.match(ok.stdout, /VERIFIED\n$/)
  // The same script without deterministic mode cannot be verified: the test above could fail.
  const bad = await cli(['verify', dirs.false])
  assert.equal(bad.code, 1, bad.stdout + bad.stderr)
})

test('a restart records a changed mode and addAPI names; old logs (no flag) replay without deterministic mode', async (t) => {
  const dir = path.join(tmpdir(t), 'vm')
  const code = 'exports.f = async () => [Date.now() > 0, System.ext ? await System.ext.one() : null]'
  const old = new VM(code, { deterministic: false })
  await old.deploy({ dir })
  await old.executeCall({ methodName: 'f' })
  await old.close()
  const again = new VM(code)
  again.addAPI('ext', { one: () => 1 })
  await again.deploy({ dir })
  t.after(() => again.close())
  assert.deepEqual(await again.executeCall({ methodName: 'f' }), [true, 1])
  const entries = await again.callLog.list()
  assert.equal(entries[0].deterministic, undefined)
  assert.deepEqual(entries[2], { type: 'restart', deterministic: true, apis: { ext: ['one'] } })
  const replica = await VM.fromCallLog(again.callLog, { filesArchiveUrl: again.filesArchive.url })
  t.after(() => replica.close())
  await Verifier.compareLogs(again.callLog, replica.callLog)
  assert.equal(replica.deterministic, true)
})

test('Math.random stays replayable across a limit stop, its restart and the calls queued behind it', async (t) => {
  const vm = new VM(`
    exports.init = () => Math.random()
    exports.spin = () => { for (;;) {} }
    exports.roll = async (x) => [x, Math.random(), await System.ext.echo(x)]`, { limits: { callTimeoutMs: 300 } })
  vm.addAPI('ext', { echo: (x) => x })
  await vm.deploy({ dir: path.join(tmpdir(t), 'vm') })
  t.after(() => vm.close())
  const calls = [0, 1, 'spin', 2, 3, 4].map((x) => x === 'spin'
    ? vm.executeCall({ methodName: 'spin' }).catch((e) => e.name)
    : vm.executeCall({ methodName: 'roll', args: [x] }))
  const results = await Promise.all(calls)
  assert.equal(results[2], 'LimitError')
  assert.equal(new Set(results.filter(Array.isArray).map((r) => r[1])).size, 5)
  const replica = await VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url })
  t.after(() => replica.close())
  await Verifier.compareLogs(vm.callLog, replica.callLog)
  const types = (await vm.callLog.list()).map((e) => e.type === 'call' ? e.call.methodName : e.type)
  assert.deepEqual(types, ['init', 'init', 'roll', 'roll', 'spin', 'restart', 'init', 'roll', 'roll', 'roll'])
  assert.ok((await vm.callLog.list()).every((e) => e.seed === undefined))
})
