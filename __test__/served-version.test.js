'use strict'
// A host serves a VM's archive only as far as the VM's durable call log accounts for: a peer that fetches while a
// call has written files but its entry is not yet logged sees none of that call's writes (a crash would roll them
// back), and sees them once the entry is durable.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

const { VM, DatArchive, ReplicationHost, Verifier } = require('..')
const { tmpdir } = require('./helpers')

const CODE = `exports.put = async (k, n) => { await System.files.writeFile('/' + k, k.repeat(n)); await System.gate.pass(); return k }`

test('a peer fetching during a call that has written but is not logged sees only the logged archive', { timeout: 60000 }, async (t) => {
  const vm = new VM(CODE)
  let hold = null // while set, a call waits at the gate after its writes
  vm.addAPI('gate', { pass: () => hold && hold.promise })
  await vm.deploy({ dir: path.join(tmpdir(t), 'vm') })
  t.after(() => vm.close())
  const host = await ReplicationHost.listen()
  t.after(() => host.close())
  await host.add(vm.callLog)
  await host.add(vm.filesArchive, { log: vm.callLog })

  // 70000 bytes: more than one content block.
  assert.equal(await vm.executeCall({ methodName: 'put', args: ['a', 70000] }), 'a')
  const logged = vm.filesArchive.version

  hold = {}
  hold.promise = new Promise((resolve) => { hold.release = resolve })
  const call = vm.executeCall({ methodName: 'put', args: ['b', 70000] })
  // The call has written /b (the archive holds it) and waits at the gate: its entry is not in the log.
  for (let i = 0; ; i++) {
    if (await vm.filesArchive.stat('/b').then(() => true, () => false)) break
    assert.ok(i < 2000, 'the call wrote /b')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  assert.ok(vm.filesArchive.version > logged)

  const fetch = async (name) => {
    const copy = new DatArchive(vm.filesArchive.url, { localPath: path.join(tmpdir(t), name), peers: [host.address], live: false })
    t.after(() => copy.close())
    await copy.ready()
    return copy
  }
  const early = await fetch('early')
  assert.equal(early.version, logged, 'the peer is served the version the durable log names')
  assert.equal(await early.readFile('/a'), 'a'.repeat(70000))
  await assert.rejects(early.stat('/b'), { code: 'NOT_FOUND' })
  await Verifier.compareArchives(vm.filesArchive.checkout(logged), early)

  hold.release()
  hold = null
  assert.equal(await call, 'b')
  // Once the entry is durable, a new peer sees the write (announcements follow the log).
  let late
  for (let i = 0; ; i++) {
    late = await fetch('late-' + i)
    if (late.version === vm.filesArchive.version) break
    assert.ok(i < 50, 'the logged write is served')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  assert.equal(await late.readFile('/b'), 'b'.repeat(70000))
  await Verifier.compareArchives(vm.filesArchive, late)
})
