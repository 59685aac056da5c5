'use strict'
// Proof of the archive format: npm hyperdrive@11 + corestore@6 open an archive written by our DatArchive.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')

const { DatArchive } = require('..')
const { tmpdir } = require('./helpers')

test('hyperdrive@11 lists, reads and checks out an archive written by our API', async (t) => {
  const localPath = path.join(tmpdir(t), 'files')
  const archive = await DatArchive.create({ localPath, title: 'interop' })
  const big = Buffer.alloc(150000)
  for (let i = 0; i < big.length; i++) big[i] = i % 251
  await archive.writeFile('/a.txt', 'hello')
  await archive.mkdir('/dir')
  await archive.writeFile('/dir/b.bin', big)
  const v = archive.version
  await archive.writeFile('/a.txt', 'bye')
  const key = archive.key
  await archive.close()

  const store = new Corestore(localPath)
  const drive = new Hyperdrive(store)
  t.after(async () => { await drive.close(); await store.close() })
  await drive.ready()
  assert.deepEqual(drive.key, key)
  // Our versions count writes; Hyperdrive's count blocks including the header: one more.
  assert.equal(drive.version, 6)

  const listed = []
  for await (const entry of drive.list('/')) listed.push(entry.key)
  assert.deepEqual(listed.sort(), ['/a.txt', '/dat.json', '/dir', '/dir/b.bin'])
  assert.equal((await drive.get('/a.txt')).toString(), 'bye')
  assert.ok((await drive.get('/dir/b.bin')).equals(big), 'multi-block file byte-exact')
  assert.deepEqual(JSON.parse(await drive.get('/dat.json')), { title: 'interop' })

  const old = drive.checkout(v + 1)
  t.after(() => old.close())
  assert.equal((await old.get('/a.txt')).toString(), 'hello')
})

test('hyperdrive@11 opens an archive rolled back by a truncation (a fork), and continues it', async (t) => {
  const localPath = path.join(tmpdir(t), 'files')
  const archive = await DatArchive.create({ localPath, title: 'fork' })
  await archive.writeFile('/keep.txt', 'kept')
  const v = archive.version
  await archive.writeFile('/gone.bin', Buffer.alloc(200000, 7))
  await archive.writeFile('/keep.txt', 'overwritten')
  assert.deepEqual(await archive._truncate(v), { writes: 2, contentBlocks: 5 })
  assert.equal(archive.version, v)
  await archive.writeFile('/after.txt', 'after the fork')
  const key = archive.key
  await archive.close()

  const store = new Corestore(localPath)
  const drive = new Hyperdrive(store)
  t.after(async () => { await drive.close(); await store.close() })
  await drive.ready()
  assert.deepEqual(drive.key, key)
  assert.equal(drive.version, v + 2)
  assert.equal(drive.core.fork, 1, 'the metadata log forked once')
  assert.equal(drive.blobs.core.fork, 1, 'and so did the content log')
  const listed = []
  for await (const entry of drive.list('/')) listed.push(entry.key)
  assert.deepEqual(listed.sort(), ['/after.txt', '/dat.json', '/keep.txt'])
  assert.equal((await drive.get('/keep.txt')).toString(), 'kept')
  assert.equal((await drive.get('/after.txt')).toString(), 'after the fork')
  // JS writes on after the fork, and we read what it wrote.
  await drive.put('/js.txt', Buffer.from('from js'))
  await drive.close()
  await store.close()
  const back = new DatArchive('dat://' + key.toString('hex'), { localPath })
  t.after(() => back.close())
  assert.equal(await back.readFile('/js.txt'), 'from js')
  assert.equal(await back.readFile('/keep.txt'), 'kept')
})
