'use strict'
// DatArchive: the files archive of a VM, with the API of Beaker's / node-dat-archive's DatArchive, stored in the
// Hyperdrive 11 format (Hyperbee metadata + Hyperblobs content, corestore@6 layout) by the Rust addon.
const fs = require('node:fs')
const path = require('node:path')

const os = require('node:os')
const native = require('./native')
const { resolvePeers, noPeerError, knownSwarm } = require('./peers')
const { swarmConfig, lookup } = require('./swarm')
const {
  wrapNative, fromData, BadArgumentError, InvalidPathError, InvalidEncodingError, ClosedError
} = require('./errors')

// Files up to this size are read synchronously (a verified read from the page cache costs less than the hop
// to a worker thread); bigger ones go to a worker so the event loop never waits on a long read.
const SYNC_READ_MAX = 256 * 1024
// Small writes are done synchronously when the archive is idle: up to one content block.
const SYNC_WRITE_MAX = 64 * 1024

const KEY_RE = /^(?:dat:\/\/)?([0-9a-f]{64})(?:\+(\d+))?\/?$/i

class Stat {
  constructor (s) {
    this._dir = s.isDir
    this.size = s.size
    this.blocks = s.blocks
    this.downloaded = s.downloaded
    this.mtime = new Date(s.mtime)
    this.ctime = new Date(s.ctime)
  }

  isFile () { return !this._dir }
  isDirectory () { return this._dir }
}

class DatArchive {
  /**
   * Open the archive `url` stored at `opts.localPath`. Fetching an archive from peers (no localPath) comes with
   * replication: a fetched archive then follows the files written on the host until closed (`live: false` keeps the
   * copy as it was when the fetch completed). Methods wait for the open; `await archive.ready()` surfaces its errors
   * early. A live fetch is sparse: the open fetches the header only, and each path's blocks are fetched when it is
   * first read (`download(path)` ahead of time); `sparse: false` (or `live: false`) downloads everything at open.
   */
  constructor (url, { localPath, peers, timeout = 10000, live = true, sparse, swarm, bootstrap } = {}, _native) {
    this._timeout = timeout
    if (_native) {
      this._drive = _native
      this._opening = Promise.resolve()
    } else {
      const m = typeof url === 'string' ? KEY_RE.exec(url) : null
      if (!m) throw new BadArgumentError(`not a dat:// archive URL: ${url}`)
      const list = resolvePeers(peers)
      // No peer and no DHT option: the DHT a swarm peer was found on before, if any (lib/peers.js).
      const config = swarmConfig({ swarm, bootstrap }) || (list.length === 0 ? knownSwarm() : null)
      const local = typeof localPath === 'string' && localPath
      if (!local && list.length === 0 && !config) {
        throw noPeerError(url) // and no {localPath} holding a copy
      }
      this._drive = null
      // With peers, the archive is downloaded (or its download resumed) into localPath, or a temporary folder.
      this._opening = Promise.resolve().then(async () => {
        const key = m[1].toLowerCase()
        if ((list.length === 0 && !config) || (local && fs.existsSync(path.join(localPath, 'primary-key')))) {
          this._drive = wrapNative(() => native.NativeDrive.open(path.resolve(localPath), key))
          return
        }
        const sparseFetch = sparse === undefined ? live !== false : !!sparse
        const dir = local ? path.resolve(localPath) : await fs.promises.mkdtemp(path.join(os.tmpdir(), 'libvms-archive-'))
        await fs.promises.mkdir(dir, { recursive: true })
        if (!config) {
          this._drive = await wrapNative(() => native.fetchDrive(key, dir, list, timeout, live !== false, sparseFetch))
          return
        }
        // Found on the DHT by the metadata log's discovery key; the content log travels on the same connections.
        const fetcher = new native.NativeSwarmFetch()
        const found = lookup(config, wrapNative(() => native.discoveryKey(key)), fetcher)
        try {
          this._drive = await wrapNative(() => fetcher.fetchDrive(key, dir, list, timeout, live !== false, sparseFetch))
        } catch (e) {
          await found.destroy()
          throw e
        }
        // A snapshot needs no peer any more; a live (or sparse) copy keeps them until closed.
        if (live === false && !sparseFetch) await found.destroy()
        else this._swarm = found
      })
      this._opening.catch(() => {}) // surfaced by ready() and every method
    }
    this._closing = null
  }

  /** Create a new archive at `localPath` with `/dat.json` = {title, description}. Its version is then 1. */
  static async create ({ localPath, title, description, type } = {}) {
    if (typeof localPath !== 'string' || !localPath) throw new BadArgumentError('DatArchive.create needs {localPath}')
    fs.mkdirSync(localPath, { recursive: true })
    const drive = wrapNative(() => native.NativeDrive.create(path.resolve(localPath)))
    const archive = new DatArchive(null, {}, drive)
    const manifest = {}
    if (title !== undefined) manifest.title = title
    if (description !== undefined) manifest.description = description
    if (type !== undefined) manifest.type = type
    try {
      await archive.writeFile('/dat.json', JSON.stringify(manifest, null, 2))
    } catch (e) {
      await archive.close()
      throw e
    }
    return archive
  }

  async ready () {
    await this._opening
    return this
  }

  get key () { return this._live().key }
  get url () { return 'dat://' + this.key.toString('hex') }
  /** Writes so far: 1 right after create, +1 per entry written. */
  get version () { return this._live().version }
  get writable () { return this._live().writable }

  async getInfo () {
    const drive = await this._open()
    let manifest = {}
    try {
      const buf = await this._held(drive, '/dat.json', 'content', () => wrapNative(() => drive.readFile('/dat.json')))
      manifest = JSON.parse(buf.toString('utf8'))
    } catch (e) {
      if (e.code !== 'NOT_FOUND' && !(e instanceof SyntaxError)) throw e
    }
    return {
      key: drive.key.toString('hex'),
      url: 'dat://' + drive.key.toString('hex'),
      isOwner: drive.writable,
      version: drive.version,
      peers: 0,
      title: manifest.title,
      description: manifest.description,
      type: manifest.type
    }
  }

  async stat (filepath) {
    const drive = this._ready() || await this._open()
    const p = checkPath(filepath)
    const read = async () => wrapNative(() => drive.statNow(p)) ?? await wrapNative(() => drive.stat(p))
    return new Stat(drive.sparse ? await this._held(drive, p, 'entry', read) : await read())
  }

  async readFile (filepath, opts) {
    const encoding = encodingOf(opts, 'utf8')
    const drive = this._ready() || await this._open()
    const p = checkPath(filepath)
    const read = async () => wrapNative(() => drive.readSmallFile(p, SYNC_READ_MAX)) ?? await wrapNative(() => drive.readFile(p))
    return decode(drive.sparse ? await this._held(drive, p, 'content', read) : await read(), encoding)
  }

  async readdir (filepath = '/', opts = {}) {
    const { recursive = false, stat = false } = opts || {}
    const drive = await this._open()
    const dir = checkPath(filepath)
    const names = await this._held(drive, dir, recursive ? 'listRecursive' : 'list', () => wrapNative(() => drive.readdir(dir, !!recursive)))
    if (!stat) return names
    const out = []
    for (const name of names) out.push({ name, stat: await this.stat(path.posix.join(dir, name)) })
    return out
  }

  async writeFile (filepath, data, opts) {
    const encoding = encodingOf(opts, typeof data === 'string' ? 'utf8' : 'binary')
    const bytes = toBytes(data, encoding)
    const drive = this._ready() || await this._open()
    const p = checkPath(filepath)
    // Small files are written on this thread when the archive is idle (no hops; see writeSmallFile).
    if (bytes.length <= SYNC_WRITE_MAX && wrapNative(() => drive.writeSmallFile(p, bytes)) !== null) return
    await wrapNative(() => drive.writeFile(p, bytes))
  }

  async mkdir (filepath) {
    const drive = await this._open()
    await wrapNative(() => drive.mkdir(checkPath(filepath)))
  }

  async unlink (filepath) {
    const drive = await this._open()
    await wrapNative(() => drive.unlink(checkPath(filepath)))
  }

  async rmdir (filepath, opts = {}) {
    const drive = await this._open()
    await wrapNative(() => drive.rmdir(checkPath(filepath), !!(opts && opts.recursive)))
  }

  async rename (src, dst) {
    const drive = await this._open()
    await wrapNative(() => drive.rename(checkPath(src), checkPath(dst)))
  }

  async copy (src, dst) {
    const drive = await this._open()
    await wrapNative(() => drive.copy(checkPath(src), checkPath(dst)))
  }

  /** One record per version in [start, end): `{type: 'put'|'del', path, version}`. */
  async history ({ start = 0, end, reverse = false } = {}) {
    const drive = await this._open()
    await this._fetchPath(drive, '/', 'metadata')
    return wrapNative(() => drive.history(start, end === undefined ? null : end, !!reverse))
  }

  /** A read-only view of the archive as it was at `version`. */
  checkout (version) {
    if (!Number.isSafeInteger(version) || version < 0) throw new BadArgumentError('version must be a non-negative integer')
    const drive = this._live()
    return new DatArchive(null, {}, wrapNative(() => drive.checkout(version)))
  }

  /**
   * Undo every write made after `version` (libvms versions): both logs are truncated (a Hypercore fork), durably.
   * Resolves with `{writes, contentBlocks}` undone. Internal: a VM rolls its archive back to what its log accounts
   * for (crash recovery, a call that must leave no trace).
   */
  async _truncate (version) {
    if (!Number.isSafeInteger(version) || version < 0) throw new BadArgumentError('version must be a non-negative integer')
    const drive = await this._open()
    return wrapNative(() => drive.truncate(version))
  }

  /**
   * The first storage failure since open, or null: a StorageIOError (a write the disk refused), or the
   * IntegrityError / StorageCorruptError of a read that met damaged storage.
   */
  _storageFailure () {
    const failure = this._drive ? wrapNative(() => this._drive.storageFailure()) : null
    return failure ? fromData(failure) : null
  }

  /**
   * Resolves once `filepath` is held locally: a file's content, or every file under a folder ('/': the whole
   * archive). A sparse fetched archive fetches just those blocks (and the metadata that finds them); any other
   * archive already holds everything.
   */
  async download (filepath = '/') {
    const drive = await this._open()
    const p = checkPath(filepath)
    await this._fetchPath(drive, p, p === '/' ? 'all' : 'content')
  }

  /** Blocks held locally: {metadata: [held, length], content: [held, length]} (tests, progress). */
  _heldBlocks () {
    const [mh, ml, ch, cl] = wrapNative(() => this._live().heldBlocks())
    return { metadata: [mh, ml], content: [ch, cl] }
  }

  /**
   * `read()` from the blocks held; on a sparse fetched archive that lacks a block it needs (OUT_OF_BOUNDS), fetch
   * what `need` of `p` reads from the peers, then read again.
   */
  async _held (drive, p, need, read) {
    if (!drive.sparse) return read()
    try {
      return await read()
    } catch (e) {
      if (e.code !== 'OUT_OF_BOUNDS') throw e
    }
    await this._fetchPath(drive, p, need)
    return read()
  }

  /** On a sparse fetched archive, fetch what `need` of `p` reads from the peers (see NativeDrive.fetchPath). */
  async _fetchPath (drive, p, need) {
    if (drive.sparse) await wrapNative(() => drive.fetchPath(p, need, this._timeout))
  }

  close () {
    if (!this._closing) {
      this._closing = this._opening.catch(() => {}).then(async () => {
        const drive = this._drive
        this._drive = null
        if (drive) await wrapNative(() => drive.close())
        if (this._swarm) await this._swarm.destroy()
      })
    }
    return this._closing
  }

  /** The open drive, or null while opening or closing (then await `_open()`): saves small reads an await. */
  _ready () {
    return this._closing ? null : this._drive
  }

  async _open () {
    await this._opening
    return this._live()
  }

  _live () {
    if (this._closing || !this._drive) {
      if (this._closing) throw new ClosedError('archive is closed')
      throw new ClosedError('archive is not open yet: await archive.ready()')
    }
    return this._drive
  }
}

function checkPath (p) {
  if (typeof p !== 'string' || p === '') throw new InvalidPathError('path must be a non-empty string')
  if (p.includes('\0')) throw new InvalidPathError('path must not contain NUL bytes')
  return p
}

const ENCODINGS = { utf8: 'utf8', 'utf-8': 'utf8', hex: 'hex', base64: 'base64', binary: 'binary', buffer: 'binary' }

function encodingOf (opts, fallback) {
  const name = typeof opts === 'string' ? opts : (opts && opts.encoding) || fallback
  const enc = ENCODINGS[name]
  if (!enc) throw new InvalidEncodingError(`unsupported encoding ${JSON.stringify(name)} (utf8, hex, base64, binary)`)
  return enc
}

function decode (buf, encoding) {
  return encoding === 'binary' ? buf : buf.toString(encoding)
}

function toBytes (data, encoding) {
  if (typeof data === 'string') return Buffer.from(data, encoding === 'binary' ? 'utf8' : encoding)
  if (Buffer.isBuffer(data)) return data
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (data instanceof ArrayBuffer) return Buffer.from(data)
  throw new BadArgumentError('data must be a string, Buffer or Uint8Array')
}

module.exports = DatArchive
