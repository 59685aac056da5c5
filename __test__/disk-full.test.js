'use strict'
// Environmental failures are not results: a write the disk refuses (full, failing) during a call or its commit is
// never logged as the call's outcome, the VM stops running calls until it is reopened, and once space is back and
// the VM reopened, it serves and verifies. Runs on a real 2 MiB tmpfs when this process may mount one, and always
// with an injected full disk (a test hook in the ledger's storage layer).
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const { VM } = require('..')
const native = require('../lib/native')
const { tmpdir, assertReplays } = require('./helpers')

const CODE = `
exports.put = async (id, n) => { await System.files.writeFile('/f-' + id, 'x'.repeat(n)); return id }
exports.swallow = async (id) => {
  try { await System.files.writeFile('/s-' + id, 'y'.repeat(1000)) } catch (e) {}
  return 'fine'
}
`

async function callEntries (vm) {
  const out = []
  for await (const e of vm.callLog.entries()) if (e.type === 'call') out.push(e)
  return out
}


test('injected full disk: the failed call is not logged, even when the script swallows the error; the VM stops until reopened', async (t) => {
  t.after(() => native.injectDiskFull(null))
  const dir = path.join(tmpdir(t), 'vm')
  let vm = await new VM(CODE).deploy({ dir })
  assert.equal(await vm.executeCall({ methodName: 'put', args: ['a', 100] }), 'a')

  native.injectDiskFull(0)
  await assert.rejects(vm.executeCall({ methodName: 'swallow', args: ['b'] }), { code: 'IO_ERROR', name: 'StorageIOError' })
  native.injectDiskFull(null)
  // Space is back, but this VM's archive lost a write: it runs nothing more until reopened.
  await assert.rejects(vm.executeCall({ methodName: 'put', args: ['c', 10] }), (e) => e.code === 'IO_ERROR' && /reopen/.test(e.message))
  assert.deepEqual((await callEntries(vm)).map((e) => e.call.args[0]), ['a'], 'neither the failed call nor the refused one is logged')
  await vm.close()

  vm = await new VM(CODE).deploy({ dir })
  assert.equal(await vm.executeCall({ methodName: 'swallow', args: ['b'] }), 'fine')
  assert.equal(await vm.filesArchive.readFile('/s-b'), 'y'.repeat(1000))
  await assertReplays(vm)
  await vm.close()
})

test('injected full disk at every point of a call and its commit: whatever fails, reopening recovers and verifies', async (t) => {
  t.after(() => native.injectDiskFull(null))
  const dir = path.join(tmpdir(t), 'vm')
  let vm = await new VM(CODE).deploy({ dir })
  let failures = 0
  // Budgets from nothing to more than a whole call takes: the failure lands in each file of the archive's two
  // logs and of the call log, in turn.
  for (let budget = 0; budget <= 4000; budget += 250) {
    const id = 'b' + budget
    native.injectDiskFull(budget)
    let ok = true
    try {
      await vm.executeCall({ methodName: 'put', args: [id, 300] })
    } catch (e) {
      ok = false
      assert.equal(e.code, 'IO_ERROR', `budget ${budget}: ${e.message}`)
    }
    native.injectDiskFull(null)
    const logged = (await callEntries(vm)).filter((e) => e.call.args[0] === id)
    for (const e of logged) assert.equal(e.result.err, undefined, `budget ${budget}: a storage failure is never logged as the outcome`)
    if (ok) {
      assert.equal(logged.length, 1, `budget ${budget}: an acknowledged call is logged`)
      continue
    }
    failures++
    await assert.rejects(vm.executeCall({ methodName: 'put', args: ['after-' + id, 1] }), { code: 'IO_ERROR' })
    await vm.close().catch(() => {})
    vm = await new VM(CODE).deploy({ dir })
    await assertReplays(vm)
  }
  assert.ok(failures >= 5, `the injected failure hit calls at several points (${failures})`)
  assert.equal(await vm.executeCall({ methodName: 'put', args: ['last', 5] }), 'last')
  await assertReplays(vm)
  await vm.close()
})

test('a real full disk (2 MiB tmpfs): the call that hits it fails unlogged; after space is freed and a reopen, the VM verifies', async (t) => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-tmpfs-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], { stdio: 'ignore' })
  } catch (e) {
    fs.rmSync(mnt, { recursive: true, force: true })
    t.skip(`cannot mount a tmpfs here (${e.message.split('\n')[0]}); the injected-failure tests above cover this path`)
    return
  }
  t.after(() => {
    execFileSync('umount', ['-l', mnt], { stdio: 'ignore' })
    fs.rmSync(mnt, { recursive: true, force: true })
  })
  const filler = path.join(mnt, 'filler')
  fs.writeFileSync(filler, Buffer.alloc(512 * 1024))
  const dir = path.join(mnt, 'vm')
  let vm = await new VM(CODE).deploy({ dir })
  let i = 0
  let failure = null
  while (!failure && i < 200) {
    try {
      await vm.executeCall({ methodName: 'put', args: ['t' + i, 64 * 1024] })
      i++
    } catch (e) {
      failure = e
    }
  }
  assert.ok(failure, 'the disk filled up')
  assert.equal(failure.code, 'IO_ERROR')
  await assert.rejects(vm.executeCall({ methodName: 'put', args: ['after', 1] }), { code: 'IO_ERROR' })
  for (const e of await callEntries(vm)) assert.equal(e.result.err, undefined, 'no storage failure is logged as an outcome')
  await vm.close().catch(() => {})
  fs.rmSync(filler)
  vm = await new VM(CODE).deploy({ dir })
  assert.equal(await vm.executeCall({ methodName: 'put', args: ['again', 10] }), 'again')
  await assertReplays(vm)
  await vm.close()
})
