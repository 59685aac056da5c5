'use strict'
// The rollback primitive a VM uses to undo archive writes its log does not account for, live (a call that must
// leave no trace) and at reopen (a crash, including one in the middle of the very first deploy).
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { VM, Verifier } = require('..')
const { tmpdir, assertReplays } = require('./helpers')

const CODE = `
exports.put = async (name, n) => { await System.files.writeFile('/' + name, 'v'.repeat(n)); return name }
exports.tidy = async () => { await System.files.mkdir('/d'); await System.files.writeFile('/d/x', 'x'); await System.files.rmdir('/d', { recursive: true }) }
`

test('vm._rollbackFiles undoes the writes made after a version, durably, and the VM goes on', async (t) => {
  const dir = path.join(tmpdir(t), 'vm')
  let vm = await new VM(CODE).deploy({ dir })
  await vm.executeCall({ methodName: 'put', args: ['a', 10] })
  const v = vm.filesArchive.version
  // Writes no log entry accounts for (as a call stopped by a limit leaves them).
  await vm.filesArchive.writeFile('/a', 'changed')
  await vm.filesArchive.writeFile('/big', Buffer.alloc(300000, 1))
  assert.deepEqual(await vm._rollbackFiles(v), { writesUndone: 2, contentBlocks: 6 })
  assert.equal(vm.filesArchive.version, v)
  assert.equal(await vm.filesArchive.readFile('/a'), 'v'.repeat(10))
  await assert.rejects(vm.filesArchive.stat('/big'), { code: 'NOT_FOUND' })
  assert.deepEqual(await vm._rollbackFiles(v), { writesUndone: 0, contentBlocks: 0 })
  await vm.executeCall({ methodName: 'tidy', args: [] })
  await vm.executeCall({ methodName: 'put', args: ['b', 5] })
  await vm.close()
  vm = await new VM(CODE).deploy({ dir })
  assert.equal(vm.recovery, null, 'nothing left to recover')
  assert.equal(await vm.filesArchive.readFile('/b'), 'vvvvv')
  await assertReplays(vm)
  await vm.close()
})

test('reopening reports the recovery: field, event and writes undone', async (t) => {
  const dir = path.join(tmpdir(t), 'vm')
  let vm = await new VM(CODE).deploy({ dir })
  await vm.executeCall({ methodName: 'put', args: ['a', 1] })
  const v = vm.filesArchive.version
  await vm.filesArchive.writeFile('/stray', 'no call wrote me')
  await vm.close()
  vm = new VM(CODE)
  const events = []
  vm.on('recovery', (r) => events.push(r))
  await vm.deploy({ dir })
  t.after(() => vm.close())
  assert.deepEqual(vm.recovery, { filesVersion: v, writesUndone: 1, contentBlocks: 1 })
  assert.deepEqual(events, [vm.recovery])
  await assert.rejects(vm.filesArchive.stat('/stray'), { code: 'NOT_FOUND' })
})

test('a first deploy cut short before meta.json starts afresh', async (t) => {
  const dir = path.join(tmpdir(t), 'vm')
  const vm = await new VM(CODE).deploy({ dir })
  await vm.close()
  fs.rmSync(path.join(dir, 'meta.json'))
  const again = await new VM(CODE).deploy({ dir })
  t.after(() => again.close())
  assert.equal(again.callLog.length, 1, 'a new log: just its init entry')
  assert.equal(await again.executeCall({ methodName: 'put', args: ['x', 1] }), 'x')
})

test('an archive rolled back at reopen (fork 1) replicates to a new peer, which sees exactly what the log accounts for', async (t) => {
  const { ReplicationHost, DatArchive } = require('..')
  const dir = path.join(tmpdir(t), 'vm')
  let vm = await new VM(CODE).deploy({ dir })
  await vm.executeCall({ methodName: 'put', args: ['a', 70000] })
  await vm.filesArchive.writeFile('/stray', 'no call wrote me')
  await vm.close()
  vm = await new VM(CODE).deploy({ dir })
  t.after(() => vm.close())
  assert.equal(vm.recovery.writesUndone, 1)
  const host = await ReplicationHost.listen({ port: 0, host: '127.0.0.1' })
  t.after(() => host.close())
  await host.add(vm.filesArchive)
  const copy = new DatArchive(vm.filesArchive.url, { localPath: path.join(tmpdir(t), 'copy'), peers: [host.address], live: false })
  t.after(() => copy.close())
  await copy.ready()
  assert.equal(await copy.readFile('/a'), 'v'.repeat(70000))
  await Verifier.compareArchives(vm.filesArchive, copy)
  await assert.rejects(copy.stat('/stray'), { code: 'NOT_FOUND' })
})
