'use strict'
// Proof of the on-disk format: npm hypercore@10 reads what we write, and we read what it writes.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const Hypercore = require('hypercore')

const { CallLog } = require('..')
const { tmpdir } = require('./helpers')

test('hypercore@10 opens a call log written by our API and reads every entry', async (t) => {
  const dir = path.join(tmpdir(t), 'call-log')
  const log = await CallLog.create(dir, 'exports.f = v => v + 1', 'dat://' + 'cd'.repeat(32))
  const expected = [await log.get(0)]
  // Enough entries for several group commits and header flushes.
  for (let i = 0; i < 300; i++) {
    const entry = { type: 'call', call: { methodName: 'f', args: [i], userId: 'u' + (i % 3) }, result: { filesVersion: 1, res: i + 1 } }
    expected.push(entry)
  }
  await Promise.all(expected.slice(1).map((e) => log.append(e)))
  const key = log.key
  const discoveryKey = log.discoveryKey
  await log.close()

  const core = new Hypercore(dir, { valueEncoding: 'json' })
  t.after(() => core.close())
  await core.ready()
  assert.deepEqual(core.key, key)
  assert.deepEqual(core.discoveryKey, discoveryKey)
  assert.equal(core.length, expected.length)
  assert.equal(core.writable, true)
  for (let i = 0; i < expected.length; i++) assert.deepEqual(await core.get(i), expected[i], `entry ${i}`)
  // JS can continue the log, and its audit finds nothing to fix.
  await core.append({ from: 'js' })
  const audit = await core.core.audit()
  assert.equal(audit.corrupt ?? 0, 0)
})

test('our CallLog opens a core written by hypercore@10 (default v1 manifest) and continues it', async (t) => {
  const dir = path.join(tmpdir(t), 'js-core')
  const core = new Hypercore(dir, { valueEncoding: 'json' })
  await core.ready()
  const entries = [{ type: 'init', code: 'x', filesArchiveUrl: 'dat://' + 'ef'.repeat(32) }]
  for (let i = 0; i < 50; i++) entries.push({ type: 'call', call: { methodName: 'm', args: [i] }, result: { filesVersion: 1 } })
  for (const e of entries) await core.append(e)
  const key = core.key
  await core.close()

  const log = await CallLog.open(dir)
  t.after(() => log.close())
  assert.deepEqual(log.key, key)
  assert.equal(log.length, entries.length)
  assert.deepEqual(await log.list(), entries)
  assert.equal(await log.verify(), true)
  assert.equal(await log.append({ from: 'rust' }), entries.length)
  await log.close()

  const back = new Hypercore(dir, { valueEncoding: 'json' })
  t.after(() => back.close())
  await back.ready()
  assert.equal(back.length, entries.length + 1)
  assert.deepEqual(await back.get(entries.length), { from: 'rust' })
})

test('hypercore@10 opens a core our ledger truncated (fork 1) and continues it', async (t) => {
  const localPath = path.join(tmpdir(t), 'files')
  const { DatArchive } = require('..')
  const archive = await DatArchive.create({ localPath, title: 't' })
  await archive.writeFile('/a', 'a')
  await archive.writeFile('/b', 'b')
  await archive._truncate(1)
  const key = archive.key
  await archive.close()
  // The metadata core, opened alone as a plain hypercore.
  const fs = require('node:fs')
  const cores = path.join(localPath, 'cores')
  const dirs = []
  for (const a of fs.readdirSync(cores)) for (const b of fs.readdirSync(path.join(cores, a))) for (const c of fs.readdirSync(path.join(cores, a, b))) dirs.push(path.join(cores, a, b, c))
  let seen = 0
  for (const dir of dirs) {
    const core = new Hypercore(dir)
    await core.ready()
    if (core.key.equals(key)) {
      seen++
      assert.equal(core.length, 2, 'header + /dat.json')
      assert.equal(core.fork, 1)
      await core.append(Buffer.from('more'))
      const audit = await core.core.audit()
      assert.equal(audit.corrupt ?? 0, 0)
    }
    await core.close()
  }
  assert.equal(seen, 1)
})
