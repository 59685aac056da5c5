'use strict'
// Damaged storage, as a hostile disk leaves it: bytes flipped in every region and files cut short, in the call log
// and in both cores of the files archive, on copies of a real VM directory. Each case is refused or named with the
// class and exit code the README documents, and no tool ever writes to the damaged directory, except to redo a
// log's journal (the appends since its last flush) over damage those records cover.
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const { VM, CallLog } = require('..')
const { cli, BIN, ENV } = require('./cli-helpers')
const { tmpdir } = require('./helpers')

const CODE = `
exports.put = async (name, size) => { await System.files.writeFile('/' + name, 'x'.repeat(size)); return name }
exports.get = (name) => System.files.readFile('/' + name)
`

/** Every file under `dir`, path -> bytes. */
function snapshot (dir) {
  const out = new Map()
  for (const rel of fs.readdirSync(dir, { recursive: true })) {
    const p = path.join(dir, rel)
    if (fs.statSync(p).isFile()) out.set(rel, fs.readFileSync(p))
  }
  return out
}

function assertUnchanged (dir, before, what) {
  const after = snapshot(dir)
  assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), `${what}: files added or removed`)
  for (const [rel, bytes] of before) assert.ok(bytes.equals(after.get(rel)), `${what}: ${rel} was written to`)
}

/** flat-tree fullRoots(2 * length): the root node indexes of a tree of `length` blocks. */
function roots (length) {
  const out = []
  let offset = 0
  let factor = 1
  while (factor * 2 <= length) factor *= 2
  let left = length
  while (left) {
    while (factor > left) factor /= 2
    out.push(offset + factor - 1)
    offset += 2 * factor
    left -= factor
  }
  return out
}

/** The three cores of a VM directory: {name, dir, length}. */
async function cores (vmDir) {
  const meta = JSON.parse(fs.readFileSync(path.join(vmDir, 'meta.json'), 'utf8'))
  const found = [{ name: 'call log', rel: 'call-log' }]
  const coresDir = path.join(vmDir, 'files', 'cores')
  for (const rel of fs.readdirSync(coresDir, { recursive: true })) {
    if (path.basename(rel) === 'oplog') found.push({ rel: path.join('files', 'cores', path.dirname(rel)) })
  }
  assert.equal(found.length, 3)
  for (const c of found) {
    const log = await CallLog.open(path.join(vmDir, c.rel)) // a reading handle: writes nothing
    c.length = log.length
    if (!c.name) c.name = log.url === meta.url ? 'files archive metadata core' : 'files archive content core'
    await log.close()
  }
  return found
}

function edit (file, fn) {
  const b = fs.readFileSync(file)
  fs.writeFileSync(file, fn(b))
}
const flip = (at, mask = 0x10) => (b) => { b[at] ^= mask; return b }
const cut = (to) => (b) => b.subarray(0, to < 0 ? b.length + to : to)
/** The current oplog header slot: slots carry a bit each, and their sum's parity picks the current one. */
const currentSlot = (oplog) => ((oplog[4] & 1) + (oplog[4096 + 4] & 1)) & 1

/** The damage cases for one core of a closed (flushed) VM directory. */
function closedCases (core) {
  const tree = roots(core.length)[0]
  assert.ok(core.length > 1 && tree > 0, `${core.name} has several blocks`)
  return [
    ['oplog: current header slot', 'oplog', (b) => flip(currentSlot(b) * 4096 + 20)(b), 'corrupt'],
    ['oplog: fallback header slot', 'oplog', (b) => flip((1 - currentSlot(b)) * 4096 + 20)(b), 'harmless'],
    ['oplog: cut inside the header slots', 'oplog', cut(4096), 'corrupt'],
    ['tree: a root', 'tree', flip(tree * 40 + 20), 'corrupt'],
    ['tree: the leaf of block 0', 'tree', flip(20), 'block 0'],
    ['tree: last node cut off', 'tree', cut(-40), 'corrupt'],
    ['bitfield: block 0 cleared', 'bitfield', flip(0, 1), 'corrupt'],
    ['bitfield: a block past the end set', 'bitfield', flip(4000, 1), 'corrupt'],
    ['bitfield: cut to nothing', 'bitfield', cut(0), 'corrupt'],
    ['data: a byte of block 0', 'data', flip(0), 'block 0'],
    ['data: last byte cut off', 'data', cut(-1), 'corrupt']
  ]
}

/**
 * Run every tool on a damaged copy and check the documented outcome; the copy must stay byte for byte, or
 * ('repaired') the damaged file must be back as `pristine` holds it.
 */
async function check (t, dir, core, what, expect, file, pristine) {
  const before = snapshot(dir)
  const label = `${core.name}, ${what}`
  const v = await cli(['verify', dir])
  if (expect === 'repaired') {
    assert.equal(v.code, 0, `${label}: verify exit\n${v.stdout}${v.stderr}`)
    const rel = path.join(core.rel, file)
    assert.ok(fs.readFileSync(path.join(dir, rel)).equals(fs.readFileSync(path.join(pristine, rel))), `${label}: the journal's redo restores ${rel}`)
    return
  }
  if (expect === 'corrupt') {
    assert.equal(v.code, 2, `${label}: verify exit\n${v.stdout}${v.stderr}`)
    assert.match(v.stderr, /StorageCorruptError/, label)
  } else if (expect === 'harmless') {
    assert.equal(v.code, 0, `${label}: verify exit\n${v.stdout}${v.stderr}`)
    assert.match(v.stdout, /VERIFIED\n$/, label)
  } else {
    assert.equal(v.code, 1, `${label}: verify exit\n${v.stdout}${v.stderr}`)
    assert.match(v.stderr, new RegExp(`${core.name} \\(.*\\(block ${expect.split(' ')[1]}\\)`), label)
    assert.match(v.stdout, /NOT VERIFIED/, label)
  }
  // A damaged data block of the log fails every read of it. A damaged tree node that a read does not need (reads
  // verify runs of blocks up to a trusted node) leaves what `log` prints true: it may exit 0.
  const readsFail = expect === 'corrupt' || (expect !== 'harmless' && file === 'data')
  if (core.name === 'call log') {
    const l = await cli(['log', dir])
    if (expect === 'corrupt') {
      assert.equal(l.code, 2, `${label}: log exit\n${l.stderr}`)
      assert.match(l.stderr, /StorageCorruptError/, label)
    } else if (readsFail) {
      assert.equal(l.code, 1, `${label}: log exit\n${l.stderr}`)
      assert.match(l.stderr, /IntegrityError/, label)
    } else {
      assert.ok(l.code === 0 || l.code === 1, `${label}: log exit ${l.code}`)
    }
  }
  if (readsFail && (expect === 'corrupt' || core.name === 'call log')) {
    // A host restarting on the directory: refused before it writes (it reads the whole log before its restart entry).
    const vm = new VM(CODE)
    await assert.rejects(vm.deploy({ dir }), (e) => e.name === (expect === 'corrupt' ? 'StorageCorruptError' : 'IntegrityError'), label)
    await vm.close().catch(() => {})
  }
  assertUnchanged(dir, before, label)
}

async function makeVM (dir, calls) {
  const vm = new VM(CODE)
  await vm.deploy({ dir, title: 'damage' })
  for (let i = 0; i < calls; i++) await vm.executeCall({ methodName: 'put', args: [`f${i}`, i === 3 ? 150000 : 100] })
  return vm
}

test('damage to any region of a closed VM directory: refused (exit 2) or named by block (exit 1), never written', async (t) => {
  const base = tmpdir(t)
  const pristine = path.join(base, 'pristine')
  await (await makeVM(pristine, 12)).close()
  const all = await cores(pristine)
  let n = 0
  for (const core of all) {
    for (const [what, file, fn, expect] of closedCases(core)) {
      const dir = path.join(base, `case${n++}`)
      fs.cpSync(pristine, dir, { recursive: true })
      edit(path.join(dir, core.rel, file), fn)
      await check(t, dir, core, what, expect, file)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
})

test('damage next to unflushed oplog entries (a host killed while running): refused, never rolled back', async (t) => {
  const base = tmpdir(t)
  const pristine = path.join(base, 'pristine')
  await (await makeVM(pristine, 2)).close()
  // A child process reopens the VM, makes calls (each one durable in an oplog entry) and dies without closing.
  const script = `
    const { VM } = require(${JSON.stringify(path.join(__dirname, '..'))})
    ;(async () => {
      const vm = new VM(${JSON.stringify(CODE)})
      await vm.deploy({ dir: ${JSON.stringify(pristine)} })
      for (let i = 0; i < 6; i++) await vm.executeCall({ methodName: 'put', args: ['g' + i, 100] })
      process.exit(0)
    })()`
  const child = spawn(process.execPath, ['-e', script], { env: ENV, stdio: 'inherit' })
  assert.equal(await new Promise((resolve) => child.on('exit', resolve)), 0)
  const all = await cores(pristine)
  let n = 0
  for (const core of all) {
    const op = fs.readFileSync(path.join(pristine, core.rel, 'oplog'))
    assert.ok(op.length > 8192 + 200, `${core.name} holds oplog entries`)
    const second = 8192 + 8 + (op.readUInt32LE(8192 + 4) >>> 2)
    assert.ok(second < op.length, `${core.name} holds several oplog entries`)
    // The journal holds every entry since the last flush: damage to one is redone away. Without it, refused.
    const cases = [
      ['oplog: current header slot, with entries after it', (b) => flip(currentSlot(b) * 4096 + 20)(b), 'corrupt'],
      ['oplog: the first entry, with valid entries after it', flip(8192 + 12), 'repaired'],
      ['oplog: the first entry, with valid entries after it, the journal lost', flip(8192 + 12), 'corrupt', true],
      ['oplog: cut after the header slots\' frames', cut(8000), 'repaired'],
      ['oplog: cut after the header slots\' frames, the journal lost', cut(8000), 'corrupt', true]
    ]
    for (const [what, fn, expect, noJournal] of cases) {
      const dir = path.join(base, `case${n++}`)
      fs.cpSync(pristine, dir, { recursive: true })
      if (noJournal) fs.rmSync(path.join(dir, core.rel, 'journal'))
      edit(path.join(dir, core.rel, 'oplog'), fn)
      await check(t, dir, core, what, expect, 'oplog', pristine)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
  // Undamaged, the same directory verifies (so the refusals above are about the damage).
  const ok = await cli(['verify', pristine])
  assert.equal(ok.code, 0, ok.stdout + ok.stderr)
})
