'use strict'
// VM.fromCallLog(..., {dir}) into a folder that already holds something.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { VM, Verifier } = require('..')
const { tmpdir } = require('./helpers')

async function served (t, code) {
  const vm = new VM(code)
  await vm.deploy({ dir: path.join(tmpdir(t), 'vm') })
  t.after(() => vm.close())
  return vm
}

const replay = (vm, dir) => VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url }, { dir })

test('a second replay of the same log into the same folder replaces the first replica', async (t) => {
  const vm = await served(t, "exports.put = (v) => System.files.writeFile('/v', String(v))")
  await vm.executeCall({ methodName: 'put', args: [1] })
  const dir = path.join(tmpdir(t), 'audit')
  const first = await replay(vm, dir)
  await first.close()
  await vm.executeCall({ methodName: 'put', args: [2] })
  const second = await replay(vm, dir)
  t.after(() => second.close())
  await Verifier.compareLogs(vm.callLog, second.callLog)
  await Verifier.compareArchives(vm.filesArchive, second.filesArchive)
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')).replicaOf, vm.callLog.url)
})

test('a replica still open is not pulled from under its VM', async (t) => {
  const vm = await served(t, 'exports.f = () => 1')
  const dir = path.join(tmpdir(t), 'audit')
  const open = await replay(vm, dir)
  t.after(() => open.close())
  await assert.rejects(replay(vm, dir), { code: 'STORAGE_LOCKED' })
  assert.equal(await open.callLog.length, 1)
})

test('a folder holding a VM, or a replica of another log, is refused with what to do', async (t) => {
  const a = await served(t, 'exports.f = () => 1')
  const b = await served(t, 'exports.f = () => 2')
  const hint = /already holds .*; replay into an empty or new folder, or remove it first/
  await assert.rejects(replay(a, a.dir), (e) => e.name === 'EntryAlreadyExistsError' && /not a replica of this log/.test(e.message) && hint.test(e.message))
  const dir = path.join(tmpdir(t), 'audit')
  await (await replay(a, dir)).close()
  await assert.rejects(replay(b, dir), (e) => e.name === 'EntryAlreadyExistsError' && e.message.includes(a.callLog.url) && hint.test(e.message))
})
