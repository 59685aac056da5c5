'use strict'
// Limits, isolation and errors outside calls: a script can hurt only itself. Each VM's script runs in its own
// worker thread; a call past callTimeoutMs or memoryMb is stopped, logged as stopped (the host's word), and the
// script restarts (logged) and keeps serving. A replay copies the stop and still verifies.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

const { VM, errors } = require('..')
const { tmpdir, assertReplays } = require('./helpers')

async function deployed (t, code, opts = {}) {
  const vm = new VM(code, opts)
  await vm.deploy({ dir: path.join(tmpdir(t), 'vm') })
  t.after(() => vm.close())
  return vm
}

function summary (entries) {
  return entries.map((e) => e.type !== 'call' ? e.type : [e.call.methodName, e.result.err || e.result.res, e.stopped].filter((x) => x !== undefined).join(' '))
}

/** Run `method`s that each must be stopped by `stopped`, each followed by `inc`; then replay and verify. */
async function stopsAndReplays (t, vm, methods, stopped) {
  assert.equal(await vm.executeCall({ methodName: 'inc' }), 11)
  const expected = ['init', 'init', 'inc 11']
  for (const method of methods) {
    await assert.rejects(vm.executeCall({ methodName: method, userId: 'mallory' }),
      (e) => e instanceof errors.LimitError && e.code === 'LIMIT_EXCEEDED' && e.stopped === stopped)
    // A fresh script: init ran again (logged), in-memory state started afresh.
    assert.equal(await vm.executeCall({ methodName: 'inc' }), 11)
    expected.push(`${method} LimitError ${stopped}`, 'restart', 'init', 'inc 11')
  }
  const entries = await vm.callLog.list()
  assert.deepEqual(summary(entries), expected)
  // The stopped call's entry: the call as received, the archive as before it, the error and the host's word.
  assert.deepEqual(entries[3], { type: 'call', call: { methodName: methods[0], args: [], userId: 'mallory' }, result: { filesVersion: 1, err: 'LimitError' }, stopped })

  // A replay does not re-run stopped calls (the verifier's own limits never come into it) and matches the host.
  await assertReplays(vm)
}

const COUNTER = `
    let n = 0
    exports.init = () => { n = 10 }
    exports.inc = () => ++n
`

test('calls that spin (synchronously or in microtasks) are stopped with LimitError; the script restarts, keeps serving, and the log replays and verifies', async (t) => {
  const vm = await deployed(t, COUNTER + `
    exports.spin = () => { for (;;) {} }
    exports.microtasks = async () => { for (;;) await null }`, { limits: { callTimeoutMs: 300 } })
  await stopsAndReplays(t, vm, ['spin', 'microtasks'], 'callTimeoutMs')
})

test('a stop names the call that spins, never one sent with it that had already returned', async (t) => {
  // Sent together, the calls run back to back in the worker: \`inc\` returns at once, then \`spin\` holds the worker.
  // \`inc\`'s answer must leave before \`spin\` starts, and the watchdog must stop \`spin\`, not \`inc\`.
  const vm = await deployed(t, COUNTER + `
    exports.spin = () => { for (;;) {} }`, { limits: { callTimeoutMs: 300 } })
  const inc = vm.executeCall({ methodName: 'inc' })
  const spin = vm.executeCall({ methodName: 'spin' })
  assert.equal(await inc, 11)
  await assert.rejects(spin, (e) => e instanceof errors.LimitError && e.stopped === 'callTimeoutMs')

  // The same while this thread is too busy to read answers until the watchdog is due: \`inc\` has returned (the
  // worker has started \`spin\`), its answer waits in this thread's queue, and the watchdog must wait for it.
  assert.equal(await vm.executeCall({ methodName: 'inc' }), 11) // the restarted script
  const again = [vm.executeCall({ methodName: 'inc' }), vm.executeCall({ methodName: 'spin' })]
  await new Promise(setImmediate) // both sent to the worker
  const sandbox = vm._sandbox
  while (Atomics.load(sandbox._started, 0) < sandbox._seq) {} // the worker runs \`spin\`
  while (performance.now() < sandbox._headSince + 300) {} // the watchdog is due
  assert.equal(await again[0], 12)
  await assert.rejects(again[1], (e) => e instanceof errors.LimitError && e.stopped === 'callTimeoutMs')
  assert.deepEqual(summary(await vm.callLog.list()), ['init', 'init', 'inc 11', 'spin LimitError callTimeoutMs', 'restart', 'init',
    'inc 11', 'inc 12', 'spin LimitError callTimeoutMs'])
  await assertReplays(vm)
})

test('calls that grow memory past memoryMb (the heap, or array buffers outside it) are stopped with LimitError; the log replays and verifies', async (t) => {
  const vm = await deployed(t, COUNTER + `
    exports.heap = () => { const keep = []; for (;;) keep.push(new Array(1e6).fill(Math.random())) }
    exports.buffers = () => { const keep = []; for (;;) keep.push(new Uint8Array(1e7).fill(1)) }
    exports.bigBuffer = () => new ArrayBuffer(1e9).byteLength
    exports.bufferClass = () => { const keep = []; for (;;) keep.push(Buffer.alloc(1e6, 1)) }`, { limits: { memoryMb: 32 } })
  await stopsAndReplays(t, vm, ['heap', 'buffers', 'bigBuffer', 'bufferClass'], 'memoryMb')
})

test('a call stopped after it wrote files leaves no trace in the archive: its writes are rolled back, and the log replays and verifies', async (t) => {
  const vm = await deployed(t, COUNTER + `
    exports.put = async (k) => { await System.files.writeFile('/' + k, k); return k }
    exports.writeThenSpin = async () => {
      await System.files.mkdir('/tmp')
      await System.files.writeFile('/tmp/a', 'x'.repeat(200000))
      await System.files.writeFile('/kept', 'overwritten by a stopped call')
      for (;;) {}
    }`, { limits: { callTimeoutMs: 500 } })
  assert.equal(await vm.executeCall({ methodName: 'put', args: ['kept'] }), 'kept')
  const before = vm.filesArchive.version
  await assert.rejects(vm.executeCall({ methodName: 'writeThenSpin' }), (e) => e instanceof errors.LimitError && e.stopped === 'callTimeoutMs' && !/could not be discarded/.test(e.message))
  // Back to the version before the call's first write, and the files as they were.
  assert.equal(vm.filesArchive.version, before)
  assert.equal(await vm.filesArchive.readFile('/kept'), 'kept')
  await assert.rejects(vm.filesArchive.stat('/tmp'), (e) => e.name === 'NotFoundError')
  // The VM keeps serving and writing after the rollback.
  assert.equal(await vm.executeCall({ methodName: 'put', args: ['after'] }), 'after')
  const entries = await vm.callLog.list()
  const stopped = entries.find((e) => e.stopped)
  assert.equal(stopped.result.filesVersion, before)
  await assertReplays(vm)
})

test('while one VM spins, another VM in the same process keeps answering', async (t) => {
  const spinner = await deployed(t, 'exports.spin = () => { for (;;) {} }', { limits: { callTimeoutMs: 3000 } })
  const other = await deployed(t, 'let n = 0\nexports.inc = async () => { await System.files.writeFile("/n", String(++n)); return n }')
  let spinEnded = false
  const spinning = spinner.executeCall({ methodName: 'spin' }).finally(() => { spinEnded = true })
  const answers = []
  for (let i = 0; i < 5; i++) answers.push(await other.executeCall({ methodName: 'inc' }))
  assert.deepEqual(answers, [1, 2, 3, 4, 5])
  assert.equal(spinEnded, false, 'the other VM answered while the spinner was still spinning')
  await assert.rejects(spinning, errors.LimitError)
})

test('errors thrown outside a call are caught per VM and reported; archive writes outside a call are refused', async (t) => {
  const vm = await deployed(t, `
    let refused = null
    exports.timerThrows = () => { setTimeout(() => { throw new RangeError('from a timer') }, 1); return 'ok' }
    exports.rejects = () => { Promise.reject(new TypeError('nobody listens')); return 'ok' }
    exports.lateWrite = () => {
      setTimeout(() => System.files.writeFile('/late', 'x').then(() => { refused = 'written' }, (e) => { refused = e.message }), 20)
      return 'ok'
    }
    exports.refused = () => refused
    exports.alive = () => 'alive'`)
  const faults = []
  vm.on('scriptError', (e) => faults.push([e.name, e.message, e.where]))
  // An idle VM does not hold the process open: the test does, while it waits (and gives up after 20 s).
  const next = () => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no scriptError event')), 20000)
    vm.once('scriptError', () => { clearTimeout(timer); resolve() })
  })

  let fault = next()
  assert.equal(await vm.executeCall({ methodName: 'timerThrows' }), 'ok')
  await fault
  fault = next()
  assert.equal(await vm.executeCall({ methodName: 'rejects' }), 'ok')
  await fault
  assert.deepEqual(faults, [['RangeError', 'from a timer', 'timer'], ['TypeError', 'nobody listens', 'rejection']])

  const version = vm.filesArchive.version
  assert.equal(await vm.executeCall({ methodName: 'lateWrite' }), 'ok')
  let refused = null
  while (refused === null) {
    await new Promise((resolve) => setTimeout(resolve, 10))
    refused = await vm.executeCall({ methodName: 'refused' })
  }
  assert.match(refused, /only allowed during a call/)
  assert.equal(vm.filesArchive.version, version)
  assert.equal(await vm.executeCall({ methodName: 'alive' }), 'alive')
})

test('a script that spins at load or in init fails its deploy with LimitError; bad limits are refused', async (t) => {
  for (const code of ['for (;;) {}', 'exports.init = () => { for (;;) {} }']) {
    const vm = new VM(code, { limits: { callTimeoutMs: 300 } })
    await assert.rejects(vm.deploy({ dir: path.join(tmpdir(t), 'vm') }), errors.LimitError)
    await vm.close()
  }
  for (const limits of [{ callTimeoutMs: 0 }, { memoryMb: 1.5 }, { callTimeoutMs: '10' }, 'fast']) {
    assert.throws(() => new VM('', { limits }), errors.BadArgumentError)
  }
})
