'use strict'
// The VM runtime: deploy, calls and their log entries, ordering, restarts, and the sandbox's globals.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { VM, DatArchive, errors } = require('..')
const { tmpdir } = require('./helpers')

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

async function deployed (t, code, opts = {}) {
  const vm = new VM(code)
  const dir = opts.dir || path.join(tmpdir(t), 'vm')
  await vm.deploy({ dir, title: 'test vm', ...opts })
  t.after(() => vm.close())
  return vm
}

test('new VM: id, code, nothing runs before deploy', () => {
  const vm = new VM('exports.f = () => 1')
  assert.match(vm.id, UUID_V4)
  assert.notEqual(vm.id, new VM('').id)
  assert.equal(vm.code, 'exports.f = () => 1')
  assert.equal(vm.exports, null)
  assert.equal(vm.callLog, null)
  assert.throws(() => new VM(42), errors.BadArgumentError)
})

test('deploy on a new dir: archive with dat.json, init entry, meta.json, ready event, exports', async (t) => {
  const dir = path.join(tmpdir(t), 'vm')
  const vm = new VM('exports.f = v => v + 1\nexports.g = function () {}\nexports.n = 3')
  let ready = 0
  vm.on('ready', () => ready++)
  await vm.deploy({ dir, title: 'My VM' })
  t.after(() => vm.close())
  assert.equal(ready, 1)
  assert.deepEqual(Object.keys(vm.exports), ['f', 'g', 'n'])
  assert.equal(vm.filesArchive.version, 1)
  assert.deepEqual(JSON.parse(await vm.filesArchive.readFile('/dat.json')), { title: 'My VM' })
  assert.deepEqual(await vm.callLog.get(0), { type: 'init', code: vm.code, filesArchiveUrl: vm.filesArchive.url, deterministic: true })
  assert.equal(vm.callLog.length, 1)
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')), { title: 'My VM', url: vm.filesArchive.url })
})

test('the SPEC example: exact call entry, undefined fields absent', async (t) => {
  const vm = await deployed(t, 'exports.f = v => v + 1\nexports.none = () => {}')
  assert.equal(await vm.executeCall({ methodName: 'f', args: [5], userId: 'bob' }), 6)
  const raw = await vm.callLog.get(1, { valueEncoding: 'utf8' })
  assert.deepEqual(JSON.parse(raw), { type: 'call', call: { methodName: 'f', args: [5], userId: 'bob' }, result: { filesVersion: 1, res: 6 } })
  assert.equal(await vm.executeCall({ methodName: 'none' }), undefined)
  assert.deepEqual(await vm.callLog.get(2), { type: 'call', call: { methodName: 'none', args: [] }, result: { filesVersion: 1 } })
})

test('errors: thrown errors and missing methods are logged by name and rethrown', async (t) => {
  const vm = await deployed(t, 'exports.boom = () => { throw new RangeError("too far") }\nexports.notFn = 5')
  await assert.rejects(vm.executeCall({ methodName: 'boom', userId: 'u' }), { name: 'RangeError', message: 'too far' })
  await assert.rejects(vm.executeCall({ methodName: 'missing' }), TypeError)
  await assert.rejects(vm.executeCall({ methodName: 'notFn' }), TypeError)
  await assert.rejects(vm.executeCall({ methodName: 'toString' }), TypeError)
  const entries = await vm.callLog.list({ start: 1 })
  assert.deepEqual(entries.map(e => e.result.err), ['RangeError', 'TypeError', 'TypeError', 'TypeError'])
  assert.deepEqual(entries[0].call, { methodName: 'boom', args: [], userId: 'u' })
})

test('results that JSON cannot hold: a clear error to the caller, a faithful log entry, no crash', async (t) => {
  const vm = await deployed(t, `
    exports.fn = () => () => 1
    exports.cycle = () => { const o = {}; o.o = o; return o }
    exports.big = () => 10n
    exports.ok = () => 'still fine'`)
  for (const m of ['cycle', 'big']) {
    await assert.rejects(vm.executeCall({ methodName: m }), errors.EncodingError)
  }
  // JSON drops functions, as the original did: the result is logged (and returned) as undefined.
  await vm.executeCall({ methodName: 'fn' })
  assert.equal(await vm.executeCall({ methodName: 'ok' }), 'still fine')
  const entries = await vm.callLog.list({ start: 1 })
  assert.equal(entries.length, 4)
  assert.equal(entries[0].result.err, 'EncodingError')
  assert.equal(entries[1].result.err, 'EncodingError')
  assert.equal(entries[3].result.res, 'still fine')
})

test('filesVersion is 1,1,... then +1 per write', async (t) => {
  const vm = await deployed(t, `
    exports.read = () => 'r'
    exports.write = async (p) => { await System.files.writeFile(p, 'x') }
    exports.two = async () => { await System.files.mkdir('/d'); await System.files.writeFile('/d/f', 'y') }`)
  const calls = ['read', 'read', 'write', 'write', 'read', 'two']
  let n = 0
  for (const m of calls) await vm.executeCall({ methodName: m, args: [`/f${n++}`] })
  const versions = (await vm.callLog.list({ start: 1 })).map(e => e.result.filesVersion)
  assert.deepEqual(versions, [1, 1, 2, 3, 3, 5])
})

test('init runs once at deploy as a logged call, and deploy waits for it', async (t) => {
  const vm = await deployed(t, `
    let ready = false
    exports.init = async () => {
      await new Promise(resolve => setTimeout(resolve, 50))
      await System.files.writeFile('/init.txt', 'done')
      ready = true
    }
    exports.isReady = () => ready`)
  assert.equal(await vm.executeCall({ methodName: 'isReady' }), true)
  assert.deepEqual(await vm.callLog.get(1), { type: 'call', call: { methodName: 'init', args: [] }, result: { filesVersion: 2 } })
  assert.equal(await vm.filesArchive.readFile('/init.txt'), 'done')
})

test('an init that throws makes deploy reject with its error', async (t) => {
  const vm = new VM('exports.init = async () => { throw new SyntaxError("bad config") }')
  await assert.rejects(vm.deploy({ dir: path.join(tmpdir(t), 'vm') }), { name: 'SyntaxError', message: 'bad config' })
  await vm.close()
  const bad = new VM('exports.f = (')
  await assert.rejects(bad.deploy({ dir: path.join(tmpdir(t), 'vm2') }), SyntaxError)
  await bad.close()
})

test('concurrent calls run one at a time, in arrival order, even across timers', async (t) => {
  const vm = await deployed(t, `
    let running = 0
    exports.slow = async (i) => {
      if (running++) throw new Error('interleaved')
      await new Promise(resolve => setTimeout(resolve, (5 - i) * 10))
      await System.files.writeFile('/last.txt', String(i))
      running--
      return i
    }`)
  const results = await Promise.all([0, 1, 2, 3, 4].map(i => vm.executeCall({ methodName: 'slow', args: [i] })))
  assert.deepEqual(results, [0, 1, 2, 3, 4])
  assert.equal(await vm.filesArchive.readFile('/last.txt'), '4')
  const logged = (await vm.callLog.list({ start: 1 })).map(e => [e.call.args[0], e.result.res, e.result.filesVersion])
  assert.deepEqual(logged, [[0, 0, 2], [1, 1, 3], [2, 2, 4], [3, 3, 5], [4, 4, 6]])
})

test('arguments are passed as the log stores them (JSON round trip)', async (t) => {
  const vm = await deployed(t, 'exports.echo = (x) => x')
  const res = await vm.executeCall({ methodName: 'echo', args: [{ d: new Date(0), u: undefined, n: NaN }] })
  assert.deepEqual(res, { d: '1970-01-01T00:00:00.000Z', n: null })
  await assert.rejects(vm.executeCall({ methodName: 'echo', args: 'nope' }), errors.BadArgumentError)
})

test('sandbox globals: System.caller.id, exactly nine files methods, no test API outside NODE_ENV=test', async (t) => {
  const saved = process.env.NODE_ENV
  delete process.env.NODE_ENV
  t.after(() => { if (saved === undefined) delete process.env.NODE_ENV; else process.env.NODE_ENV = saved })
  const vm = await deployed(t, `
    exports.who = () => System.caller.id
    exports.files = () => Object.keys(System.files)
    exports.globals = () => ({
      test: typeof System.test, require: typeof require, process: typeof process,
      buffer: typeof Buffer, timers: [setTimeout, clearTimeout, setInterval, clearInterval, setImmediate, clearImmediate].every(f => typeof f === 'function')
    })`)
  assert.equal(await vm.executeCall({ methodName: 'who', userId: 'alice' }), 'alice')
  assert.equal(await vm.executeCall({ methodName: 'who' }), undefined)
  // Results come from the script's realm: compare them as plain data.
  const plain = async (methodName) => JSON.parse(JSON.stringify(await vm.executeCall({ methodName })))
  assert.deepEqual(await plain('files'),
    ['getInfo', 'stat', 'readFile', 'readdir', 'writeFile', 'mkdir', 'unlink', 'rmdir', 'history'])
  assert.deepEqual(await plain('globals'),
    { test: 'undefined', require: 'undefined', process: 'undefined', buffer: 'function', timers: true })
})

test('addAPI adds System[name] for scripts evaluated afterwards', async (t) => {
  const vm = new VM('exports.hello = () => System.greeter.hello("vm")')
  vm.addAPI('greeter', { hello: (who) => `hello ${who}` })
  await vm.deploy({ dir: path.join(tmpdir(t), 'vm') })
  t.after(() => vm.close())
  assert.equal(await vm.executeCall({ methodName: 'hello' }), 'hello vm')
})

test('deploy on an existing dir reopens both stores, logs the restart and reruns init', async (t) => {
  const dir = path.join(tmpdir(t), 'vm')
  const code = `
    let calls = 0
    exports.init = async () => { await System.files.writeFile('/boot', String(Date.now())) }
    exports.count = () => ++calls`
  const first = new VM(code)
  await first.deploy({ dir, title: 'persist' })
  await first.executeCall({ methodName: 'count' })
  const url = first.filesArchive.url
  const logUrl = first.callLog.url
  await first.close()

  const second = new VM(code)
  await assert.rejects(second.deploy({ dir, url: 'dat://' + 'ab'.repeat(32) }), errors.BadArgumentError)
  await second.deploy({ dir, url })
  t.after(() => second.close())
  assert.equal(second.filesArchive.url, url)
  assert.equal(second.callLog.url, logUrl)
  assert.equal(await second.executeCall({ methodName: 'count' }), 1, 'in-memory state starts afresh')
  const entries = await second.callLog.list()
  assert.deepEqual(entries.map(e => e.type === 'call' ? e.call.methodName : e.type), ['init', 'init', 'count', 'restart', 'init', 'count'])
  assert.deepEqual(entries[3], { type: 'restart' })
})

test('close is idempotent, nulls both stores, emits close once; calls after close fail', async (t) => {
  const vm = new VM('exports.f = () => 1')
  await vm.deploy({ dir: path.join(tmpdir(t), 'vm') })
  let closed = 0
  vm.on('close', () => closed++)
  const pending = vm.executeCall({ methodName: 'f' })
  await Promise.all([vm.close(), vm.close()])
  await vm.close()
  assert.equal(await pending, 1, 'a queued call finishes before close')
  assert.equal(closed, 1)
  assert.equal(vm.callLog, null)
  assert.equal(vm.filesArchive, null)
  await assert.rejects(vm.executeCall({ methodName: 'f' }), errors.ClosedError)
})

test('the archive a VM wrote is a normal DatArchive on disk', async (t) => {
  const dir = path.join(tmpdir(t), 'vm')
  const vm = new VM('exports.w = async () => { await System.files.writeFile("/hello.txt", "world") }')
  await vm.deploy({ dir })
  await vm.executeCall({ methodName: 'w' })
  const url = vm.filesArchive.url
  await vm.close()
  const archive = new DatArchive(url, { localPath: path.join(dir, 'files') })
  t.after(() => archive.close())
  assert.equal(await archive.readFile('/hello.txt'), 'world')
})
