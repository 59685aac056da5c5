'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')

const { DatArchive, errors } = require('..')
const { tmpdir } = require('./helpers')

async function createArchive (t, opts = {}) {
  const localPath = path.join(tmpdir(t), 'files')
  const archive = await DatArchive.create({ localPath, title: 'Test', ...opts })
  t.after(() => archive.close())
  return { localPath, archive }
}

test('create writes /dat.json and starts at version 1', async (t) => {
  const { archive } = await createArchive(t, { description: 'd' })
  assert.match(archive.url, /^dat:\/\/[0-9a-f]{64}$/)
  assert.equal(archive.key.length, 32)
  assert.equal(archive.version, 1)
  assert.deepEqual(JSON.parse(await archive.readFile('/dat.json')), { title: 'Test', description: 'd' })
  const info = await archive.getInfo()
  assert.equal(info.url, archive.url)
  assert.equal(info.key, archive.key.toString('hex'))
  assert.equal(info.title, 'Test')
  assert.equal(info.description, 'd')
  assert.equal(info.version, 1)
  assert.equal(info.isOwner, true)
})

test('every write bumps the version by exactly one', async (t) => {
  const { archive } = await createArchive(t)
  await archive.writeFile('/a.txt', 'a'); assert.equal(archive.version, 2)
  await archive.mkdir('/dir'); assert.equal(archive.version, 3)
  await archive.writeFile('/dir/b.txt', 'b'); assert.equal(archive.version, 4)
  await archive.unlink('/a.txt'); assert.equal(archive.version, 5)
  await archive.copy('/dir/b.txt', '/c.txt'); assert.equal(archive.version, 6)
  await archive.rename('/c.txt', '/d.txt'); assert.equal(archive.version, 8, 'rename = put + del')
  await archive.rmdir('/dir', { recursive: true }); assert.equal(archive.version, 10, 'one per entry touched')
})

test('readFile and writeFile encodings', async (t) => {
  const { archive } = await createArchive(t)
  await archive.writeFile('/u.txt', 'héllo')
  assert.equal(await archive.readFile('/u.txt'), 'héllo')
  assert.equal(await archive.readFile('/u.txt', 'utf8'), 'héllo')
  assert.equal(await archive.readFile('/u.txt', { encoding: 'hex' }), Buffer.from('héllo').toString('hex'))
  assert.equal(await archive.readFile('/u.txt', 'base64'), Buffer.from('héllo').toString('base64'))
  assert.deepEqual(await archive.readFile('/u.txt', 'binary'), Buffer.from('héllo'))
  assert.deepEqual(await archive.readFile('/u.txt', { encoding: 'buffer' }), Buffer.from('héllo'))
  await archive.writeFile('/h.bin', 'deadbeef', 'hex')
  assert.deepEqual(await archive.readFile('/h.bin', 'binary'), Buffer.from([0xde, 0xad, 0xbe, 0xef]))
  await archive.writeFile('/b.bin', Buffer.from('aGk=', 'base64').toString('base64'), { encoding: 'base64' })
  assert.equal(await archive.readFile('/b.bin'), 'hi')
  await archive.writeFile('/u8.bin', new Uint8Array([1, 2, 3]))
  assert.deepEqual(await archive.readFile('/u8.bin', 'binary'), Buffer.from([1, 2, 3]))
  await archive.writeFile('/empty.txt', '')
  assert.equal(await archive.readFile('/empty.txt'), '')
  const v = archive.version
  await assert.rejects(archive.readFile('/u.txt', 'latin9'), { name: 'InvalidEncodingError', code: 'INVALID_ENCODING' })
  await assert.rejects(archive.writeFile('/x.txt', 'x', 'latin9'), { name: 'InvalidEncodingError' })
  await assert.rejects(archive.writeFile('/x.txt', 42), { code: 'BAD_ARGUMENT' })
  assert.equal(archive.version, v, 'failed writes change nothing')
})

test('a multi-block file round-trips byte for byte', async (t) => {
  const { archive } = await createArchive(t)
  const big = Buffer.alloc(3 * 65536 + 1234)
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) % 251
  await archive.writeFile('/big.bin', big)
  const back = await archive.readFile('/big.bin', 'binary')
  assert.equal(back.length, big.length)
  assert.ok(back.equals(big))
  const st = await archive.stat('/big.bin')
  assert.equal(st.size, big.length)
  assert.equal(st.blocks, 4)
})

test('stat, readdir (shallow, recursive, with stat) and directories', async (t) => {
  const { archive } = await createArchive(t)
  await archive.mkdir('/a')
  await archive.mkdir('/a/b')
  await archive.writeFile('/a/b/c.txt', 'c')
  await archive.writeFile('/a/x.txt', 'xx')
  const f = await archive.stat('/a/x.txt')
  assert.equal(f.isFile(), true)
  assert.equal(f.isDirectory(), false)
  assert.equal(f.size, 2)
  assert.ok(f.mtime instanceof Date && f.ctime instanceof Date)
  assert.ok(Math.abs(f.mtime.getTime() - Date.now()) < 60000)
  const d = await archive.stat('/a')
  assert.equal(d.isDirectory(), true)
  assert.equal((await archive.stat('/')).isDirectory(), true)
  assert.deepEqual(await archive.readdir('/'), ['a', 'dat.json'])
  assert.deepEqual(await archive.readdir('/a'), ['b', 'x.txt'])
  assert.deepEqual((await archive.readdir('/', { recursive: true })).sort(), ['a', 'a/b', 'a/b/c.txt', 'a/x.txt', 'dat.json'])
  const withStat = await archive.readdir('/a', { stat: true })
  assert.deepEqual(withStat.map((e) => [e.name, e.stat.isDirectory()]), [['b', true], ['x.txt', false]])
})

test('errors carry Beaker names and codes, and change nothing', async (t) => {
  const { archive } = await createArchive(t)
  await archive.mkdir('/dir')
  await archive.writeFile('/dir/f.txt', 'f')
  const v = archive.version
  const cases = [
    [() => archive.readFile('/missing'), 'NotFoundError', 'NOT_FOUND'],
    [() => archive.stat('/missing'), 'NotFoundError', 'NOT_FOUND'],
    [() => archive.unlink('/missing'), 'NotFoundError', 'NOT_FOUND'],
    [() => archive.mkdir('/dir'), 'EntryAlreadyExistsError', 'ENTRY_ALREADY_EXISTS'],
    [() => archive.writeFile('/nope/f.txt', 'x'), 'ParentFolderDoesntExistError', 'PARENT_FOLDER_DOESNT_EXIST'],
    [() => archive.mkdir('/nope/sub'), 'ParentFolderDoesntExistError', 'PARENT_FOLDER_DOESNT_EXIST'],
    [() => archive.rmdir('/dir'), 'DestDirectoryNotEmpty', 'DEST_DIRECTORY_NOT_EMPTY'],
    [() => archive.readFile('/../../etc/passwd'), 'InvalidPathError', 'INVALID_PATH'],
    [() => archive.writeFile('/a\0b', 'x'), 'InvalidPathError', 'INVALID_PATH'],
    [() => archive.writeFile('', 'x'), 'InvalidPathError', 'INVALID_PATH'],
    [() => archive.writeFile(42, 'x'), 'InvalidPathError', 'INVALID_PATH'],
    [() => archive.rename('/dir/f.txt', '/dir'), 'EntryAlreadyExistsError', 'ENTRY_ALREADY_EXISTS']
  ]
  for (const [fn, name, code] of cases) {
    await assert.rejects(fn(), (e) => e.name === name && e.code === code && e instanceof errors.LibvmsError, `${name} for ${fn}`)
  }
  assert.equal(archive.version, v)
  assert.equal(await archive.readFile('/dir/f.txt'), 'f')
})

test('history lists one record per version; checkout is a read-only view of the past', async (t) => {
  const { archive } = await createArchive(t)
  await archive.writeFile('/a.txt', 'one')
  await archive.writeFile('/a.txt', 'two')
  await archive.unlink('/a.txt')
  const h = await archive.history()
  assert.deepEqual(h, [
    { type: 'put', path: '/dat.json', version: 1 },
    { type: 'put', path: '/a.txt', version: 2 },
    { type: 'put', path: '/a.txt', version: 3 },
    { type: 'del', path: '/a.txt', version: 4 }
  ])
  assert.deepEqual(await archive.history({ start: 2, end: 4 }), h.slice(1, 3))
  assert.deepEqual(await archive.history({ reverse: true }), [...h].reverse())
  const v2 = archive.checkout(2)
  assert.equal(v2.version, 2)
  assert.equal(await v2.readFile('/a.txt'), 'one')
  assert.equal(await archive.checkout(3).readFile('/a.txt'), 'two')
  await assert.rejects(archive.readFile('/a.txt'), { name: 'NotFoundError' })
  await assert.rejects(v2.writeFile('/b.txt', 'x'), { name: 'ArchiveNotWritableError', code: 'ARCHIVE_NOT_WRITABLE' })
  assert.throws(() => archive.checkout(99), { code: 'BAD_ARGUMENT' })
})

test('reopen after close by url and localPath; wrong url and a second open are refused', async (t) => {
  const { localPath, archive } = await createArchive(t)
  await archive.writeFile('/keep.txt', 'kept')
  await assert.rejects(new DatArchive(archive.url, { localPath }).ready(), { code: 'STORAGE_LOCKED' })
  const url = archive.url
  await archive.close()
  await archive.close()
  await assert.rejects(archive.readFile('/keep.txt'), { name: 'ClosedError' })

  await assert.rejects(new DatArchive('dat://' + 'ab'.repeat(32), { localPath }).ready(), { code: 'BAD_ARGUMENT' })
  const again = new DatArchive(url, { localPath })
  t.after(() => again.close())
  await again.ready()
  assert.equal(again.version, 2)
  assert.equal(await again.readFile('/keep.txt'), 'kept')
  await again.writeFile('/more.txt', 'm')
  assert.equal(again.version, 3)
  await again.download('/')
  assert.throws(() => new DatArchive('not a url', { localPath }), { code: 'BAD_ARGUMENT' })
})
