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
