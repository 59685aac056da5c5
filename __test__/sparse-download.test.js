'use strict'
// A fetched archive is sparse: opening it fetches its header only, and download(path) / readFile / stat fetch just
// the blocks that path needs (the metadata lookup down to its entry, then its content range). Host and fetcher talk
// over TCP on 127.0.0.1; the counts are of blocks held on the fetcher's disk.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

const { DatArchive, ReplicationHost } = require('..')
const { tmpdir } = require('./helpers')

const FOLDERS = 8
const FILES = 96
const SIZE = 2 * 65536 + 11 // three content blocks each
const body = (i) => Buffer.alloc(SIZE, i % 251)

async function serve (t, opts) {
  const src = await DatArchive.create({ localPath: path.join(tmpdir(t), 'src'), title: 'many files' })
  t.after(() => src.close())
  for (let d = 0; d < FOLDERS; d++) await src.mkdir(`/d${d}`)
  for (let i = 0; i < FILES; i++) await src.writeFile(`/d${i % FOLDERS}/f${i}.bin`, body(i))
  const host = await ReplicationHost.listen(opts)
  t.after(() => host.close())
  await host.add(src)
  return { src, host }
}

test('download(path) fetches only that path: its lookup blocks and its content, verified', async (t) => {
  const { src, host } = await serve(t)
  const copy = new DatArchive(src.url, { localPath: path.join(tmpdir(t), 'copy'), peers: [host.address] })
  t.after(() => copy.close())
  await copy.ready()
  const metaLength = 1 + 1 + FOLDERS + FILES // header, /dat.json, folders, files
  assert.deepEqual(copy._heldBlocks(), { metadata: [1, metaLength], content: [0, 1 + 3 * FILES] }, 'the open fetched the header only')

  await copy.download('/d5/f45.bin')
  const held = copy._heldBlocks()
  assert.equal(held.content[0], 3, "that file's three content blocks, nothing else")
  assert.ok(held.metadata[0] > 1 && held.metadata[0] <= 12, `a root-to-entry walk, not all ${metaLength}: ${held.metadata[0]}`)
  assert.deepEqual(await copy.readFile('/d5/f45.bin', 'binary'), body(45))
  await copy._live().verifyStorage() // every held block against the signed trees
  assert.deepEqual(copy._heldBlocks().content, held.content, 'the read needed no more blocks')

  // Another file's entry answers stat (metadata only); its content stays remote until read.
  const other = await copy.stat('/d2/f10.bin')
  assert.equal(other.blocks, 3)
  assert.equal(other.downloaded, 0)
  assert.equal(copy._heldBlocks().content[0], 3)
  assert.deepEqual(await copy.readFile('/d2/f10.bin', 'binary'), body(10))
  assert.equal((await copy.stat('/d2/f10.bin')).downloaded, 3)
  assert.equal(copy._heldBlocks().content[0], 6)

  // A folder brings the files under it; a missing path is NOT_FOUND; '/' is everything.
  await copy.download('/d7')
  assert.equal(copy._heldBlocks().content[0], 6 + 3 * (FILES / FOLDERS))
  await assert.rejects(copy.readFile('/d7/nope'), { code: 'NOT_FOUND' })
  assert.deepEqual(await copy.readdir('/d3'), (await src.readdir('/d3')))
  await copy.download('/')
  assert.deepEqual(copy._heldBlocks(), { metadata: [metaLength, metaLength], content: [1 + 3 * FILES, 1 + 3 * FILES] })
})

test('sparse: false downloads the whole archive at open; a lying peer fails a sparse open with a verification error', async (t) => {
  const { src, host } = await serve(t)
  const whole = new DatArchive(src.url, { localPath: path.join(tmpdir(t), 'whole'), peers: [host.address], sparse: false })
  t.after(() => whole.close())
  await whole.ready()
  assert.deepEqual(whole._heldBlocks().content, [1 + 3 * FILES, 1 + 3 * FILES])

  const liar = await ReplicationHost.listen({ _corruptBlocks: true })
  t.after(() => liar.close())
  await liar.add(src)
  const copy = new DatArchive(src.url, { localPath: path.join(tmpdir(t), 'lied'), peers: [liar.address], timeout: 5000 })
  t.after(() => copy.close())
  await assert.rejects(copy.ready(), (e) => {
    assert.ok(['VERIFICATION_FAILED', 'INVALID_PROOF', 'INVALID_SIGNATURE'].includes(e.code), e.code)
    return true
  })
})
