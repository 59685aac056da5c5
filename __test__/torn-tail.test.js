'use strict'
// Torn tails: a VM directory as a crash at any byte of its last call's writes leaves it. A call writes, in order,
// the archive's content log (data and the oplog entry that makes it visible, made durable together: one journal
// record, or both files synced for a large write), its metadata log (same), then the call log (same), each durable
// before the next starts. Cutting one file at a random offset inside what the last call added, with every file
// written before it whole and every file after it (the journals too) as it was before the call, is such a crash; so
// is a log's data cut while its oplog entry is whole. Each one reopens, drops the torn batch, rolls the archive back
// to what the log accounts for, and verifies.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { VM } = require('..')
const { tmpdir, assertReplays } = require('./helpers')

const CODE = `exports.put = async (id, n) => { await System.files.writeFile('/f-' + id, 'z'.repeat(n)); return id }`
const OFFSETS = 3

function sizes (dir) {
  const out = {}
  for (const f of fs.readdirSync(dir, { recursive: true })) {
    const p = path.join(dir, f)
    if (fs.statSync(p).isFile()) out[f] = fs.statSync(p).size
  }
  return out
}

test('a file of a VM directory cut anywhere inside the last call\'s writes reopens, recovers and verifies', { timeout: 120000 }, async (t) => {
  const root = tmpdir(t)
  const dir = path.join(root, 'vm')
  const vm = await new VM(CODE).deploy({ dir })
  for (let i = 0; i < 5; i++) await vm.executeCall({ methodName: 'put', args: ['a' + i, 100] })
  const before = sizes(dir)
  // Journals are rewritten in place, not grown: the bytes before the call stand for "its record never landed".
  const journals = new Map()
  for (const f of Object.keys(before).filter((f) => path.basename(f) === 'journal')) journals.set(path.dirname(f), fs.readFileSync(path.join(dir, f)))
  const logLength = vm.callLog.length
  await vm.executeCall({ methodName: 'put', args: ['last', 100000] })
  const after = sizes(dir)
  const full = path.join(root, 'full')
  fs.cpSync(dir, full, { recursive: true })
  await vm.close()

  // The write order: content log, metadata log, call log; in each, data before oplog.
  const cores = Object.keys(after).filter((f) => f.endsWith('/data') && f.startsWith('files'))
    .map((f) => path.dirname(f))
    .sort((a, b) => (after[b + '/data'] - before[b + '/data']) - (after[a + '/data'] - before[a + '/data']))
  const order = []
  for (const core of [...cores, 'call-log']) for (const name of ['data', 'oplog']) order.push(path.join(core, name))
  for (const f of order) assert.ok(after[f] > before[f], `${f} grew in the last call`)

  let seed = 7
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
  let rolledBack = 0
  for (let k = 0; k < order.length; k++) {
    // A data file is cut either with its oplog entry not yet written, or (the two syncs race) with it whole.
    const entryWhole = order[k].endsWith('data') ? [false, true] : [false]
    for (let j = 0; j < OFFSETS * entryWhole.length; j++) {
      const withEntry = entryWhole[j % entryWhole.length]
      const cut = before[order[k]] + Math.floor(rand() * (after[order[k]] - before[order[k]]))
      const copy = path.join(root, `cut-${k}-${j}`)
      fs.cpSync(full, copy, { recursive: true })
      for (let m = k + (withEntry ? 2 : 1); m < order.length; m++) fs.truncateSync(path.join(copy, order[m]), before[order[m]])
      fs.truncateSync(path.join(copy, order[k]), cut)
      // The cut log's journal record and those of every log after it were never made durable.
      for (let m = k; m < order.length; m++) {
        const j = journals.get(path.dirname(order[m]))
        if (j) fs.writeFileSync(path.join(copy, path.dirname(order[m]), 'journal'), j)
      }
      const what = `${order[k]} cut at ${cut}${withEntry ? ', its oplog entry whole' : ''} (last call: ${before[order[k]]}..${after[order[k]]})`

      const reopened = await new VM(CODE).deploy({ dir: copy })
      try {
        if (reopened.recovery) rolledBack++
        // Only the call log's own oplog entry makes the call count: the restart follows it.
        const hasLast = reopened.callLog.length === logLength + 2
        assert.equal(reopened.callLog.length, hasLast ? logLength + 2 : logLength + 1, what)
        if (k < order.length - 1) assert.equal(hasLast, false, `${what}: the call's entry is not durable`)
        if (hasLast) assert.equal((await reopened.filesArchive.readFile('/f-last')).length, 100000, what)
        else await assert.rejects(reopened.filesArchive.stat('/f-last'), { code: 'NOT_FOUND' }, what)
        await assertReplays(reopened)
        assert.equal(await reopened.executeCall({ methodName: 'put', args: ['next', 10] }), 'next', what)
      } finally {
        await reopened.close()
        fs.rmSync(copy, { recursive: true, force: true })
      }
    }
  }
  assert.ok(rolledBack >= 2 * OFFSETS, `cuts that left archive writes the log does not account for were rolled back (${rolledBack})`)
})
