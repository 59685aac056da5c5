'use strict'
// Damage inside the files archive met by a call is the disk's failure, not the call's outcome: a read that fails
// its signed tree during a call (a flipped byte in a content block or in a metadata block) is never logged as a
// result or an error, even when the script catches it; the VM stops, as after a full disk. Nothing is written to
// the damaged archive either.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { VM } = require('..')
const { tmpdir } = require('./helpers')

const CODE = `
exports.put = async (name, text) => { await System.files.writeFile('/' + name, text); return name }
// Swallows every error: a damaged read must not become this call's 'fine' either.
exports.peek = async (name) => {
  try { return await System.files.readFile('/' + name) } catch (e) { return 'fine' }
}
`

/** The data file of the archive core whose data holds `marker`, and where. */
function findInArchive (dir, marker) {
  const cores = path.join(dir, 'files', 'cores')
  for (const rel of fs.readdirSync(cores, { recursive: true })) {
    if (path.basename(rel) !== 'data') continue
    const file = path.join(cores, rel)
    const at = fs.readFileSync(file).indexOf(marker)
    if (at >= 0) return { file, at }
  }
  throw new Error(`${marker} not found in the archive`)
}

function flipAt (file, at) {
  const b = fs.readFileSync(file)
  b[at] ^= 0x20
  fs.writeFileSync(file, b)
}

async function calls (vm) {
  const out = []
  for await (const e of vm.callLog.entries()) if (e.type === 'call') out.push(`${e.call.methodName}(${e.call.args[0]})`)
  return out
}

for (const [what, marker] of [
  ['a content block (the file\'s bytes)', 'CONTENT-MARKER-7f3a'],
  ['a metadata block (the file\'s entry)', 'meta-marker-file']
]) {
  test(`a flipped byte in ${what}: the call that reads it is not logged, the VM stops`, async (t) => {
    const dir = path.join(tmpdir(t), 'vm')
    const vm = await new VM(CODE).deploy({ dir })
    await vm.executeCall({ methodName: 'put', args: ['meta-marker-file', 'CONTENT-MARKER-7f3a'.repeat(20)] })
    await vm.executeCall({ methodName: 'put', args: ['other', 'hello'] })
    await vm.close()

    const { file, at } = findInArchive(dir, marker)
    flipAt(file, at + 3)
    const damaged = fs.readFileSync(file)

    // deploy reads the whole call log (intact) and the archive's root: neither needs the damaged block.
    const again = await new VM(CODE).deploy({ dir })
    const before = await calls(again)
    await assert.rejects(again.executeCall({ methodName: 'peek', args: ['meta-marker-file'] }),
      (e) => ['VERIFICATION_FAILED', 'STORAGE_CORRUPT'].includes(e.code), 'the damaged read is the call\'s failure, not its outcome')
    // The VM stopped: nothing more runs (or is logged) until it is reopened.
    await assert.rejects(again.executeCall({ methodName: 'put', args: ['later', 'x'] }), (e) => e.code === 'IO_ERROR' && /reopen/.test(e.message))
    assert.deepEqual(await calls(again), before, 'neither call was logged')
    assert.deepEqual(before, ['put(meta-marker-file)', 'put(other)'])
    await again.close()
    assert.ok(fs.readFileSync(file).equals(damaged), 'the damaged archive file was not written to')
  })
}

test('an undamaged copy: the same calls are logged (so the refusals above are about the damage)', async (t) => {
  const dir = path.join(tmpdir(t), 'vm')
  const vm = await new VM(CODE).deploy({ dir })
  await vm.executeCall({ methodName: 'put', args: ['meta-marker-file', 'CONTENT-MARKER-7f3a'.repeat(20)] })
  await vm.close()
  const again = await new VM(CODE).deploy({ dir })
  assert.equal(await again.executeCall({ methodName: 'peek', args: ['meta-marker-file'] }), 'CONTENT-MARKER-7f3a'.repeat(20))
  assert.deepEqual(await calls(again), ['put(meta-marker-file)', 'peek(meta-marker-file)'])
  await again.close()
})

for (const [what, marker, core] of [
  ['the latest metadata block', 'last-marker-file', 'metadata'],
  ['the latest content block', 'LAST-CONTENT-MARKER', 'content']
]) {
  test(`a flipped byte in ${what}: deploy refuses the archive before writing (checked at open)`, async (t) => {
    const dir = path.join(tmpdir(t), 'vm')
    const vm = await new VM(CODE).deploy({ dir })
    await vm.executeCall({ methodName: 'put', args: ['first', 'hello'] })
    await vm.executeCall({ methodName: 'put', args: ['last-marker-file', 'LAST-CONTENT-MARKER'] })
    await vm.close()
    const { file, at } = findInArchive(dir, marker)
    flipAt(file, at + 3)
    const before = new Map(fs.readdirSync(dir, { recursive: true }).map((rel) => path.join(dir, rel))
      .filter((p) => fs.statSync(p).isFile()).map((p) => [p, fs.readFileSync(p)]))
    const again = new VM(CODE)
    await assert.rejects(again.deploy({ dir }), (e) => e.name === 'IntegrityError' && e.message.includes(`files archive ${core} core`))
    await again.close().catch(() => {})
    for (const [p, bytes] of before) assert.ok(bytes.equals(fs.readFileSync(p)), `${p} was written to`)
  })
}
