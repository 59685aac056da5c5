'use strict'
// A log and an archive written by an earlier version of libvms, committed as they were: a format change that breaks
// reading them fails here. Never regenerate this fixture; add a new one next to it.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { CallLog, DatArchive } = require('..')
const { tmpdir } = require('./helpers')

const FIXTURE = path.join(__dirname, 'fixtures', 'frozen-v1')
const LOG_URL = 'dat://dcff3f45d9820fc9d7a7289ddf424323967dc7f43a8ccb8f44168dafb1c910c0'
const ARCHIVE_URL = 'dat://827dea837c8ab135800223b7cf70f79d97f02f36b7d519b4653e7351faca172e'

test('the frozen v1 call log and archive still open, read and verify', async (t) => {
  const dir = tmpdir(t)
  fs.cpSync(FIXTURE, dir, { recursive: true }) // work on a copy: opening may flush

  const log = await CallLog.open(path.join(dir, 'call-log'))
  t.after(() => log.close())
  assert.equal(log.url, LOG_URL)
  assert.equal(log.length, 6)
  assert.deepEqual(await log.get(0), { type: 'init', code: 'exports.f = v => v + 1', filesArchiveUrl: ARCHIVE_URL })
  const calls = await log.list({ start: 1 })
  assert.deepEqual(calls.map((e) => e.result), [1, 2, 3, 4, 5].map((res) => ({ filesVersion: 4, res })))
  assert.equal(await log.verify(), true)

  const archive = new DatArchive(ARCHIVE_URL, { localPath: path.join(dir, 'files') })
  t.after(() => archive.close())
  await archive.ready()
  assert.equal(archive.version, 4)
  assert.equal(await archive.readFile('/d/x.txt'), 'frozen x')
  assert.equal(await archive.readFile('/n.json'), '[1,2,3]')
  assert.equal((await archive.getInfo()).title, 'frozen')
})
