'use strict'
// CallLog: the signed, append-only log of a VM's calls, on a Hypercore-10 ledger core written in Rust.
const { EventEmitter } = require('node:events')
const path = require('node:path')
const fs = require('node:fs')

const native = require('./native')
const { wrapNative, BadArgumentError, ClosedError, OutOfBoundsError, TimeoutError, EncodingError } = require('./errors')
const { encodeJSON } = require('./json')
const { resolvePeers } = require('./peers')

const READ_CHUNK = 512 // entries fetched from native per step when streaming

class CallLog extends EventEmitter {
  /** @param {object} core a native ledger handle; use CallLog.create / CallLog.open instead. */
  constructor (core, dir) {
    super()
    this._core = core
    this.dir = dir
    this._closing = null
    this._waiters = new Set()
  }

  /** Create a new log in `dir` whose entry 0 is `{type:'init', code, filesArchiveUrl}`. */
  static async create (dir, code, filesArchiveUrl) {
    checkDir(dir)
    if (typeof code !== 'string') throw new BadArgumentError('code must be a string')
    await fs.promises.mkdir(dir, { recursive: true })
    const log = new CallLog(wrapNative(() => native.NativeLog.create(path.resolve(dir))), dir)
    try {
      await log.appendInit({ code, filesArchiveUrl })
    } catch (e) {
      await log.close()
      throw e
    }
    return log
  }

  /** Open an existing log (writable when its secret key is stored there). */
  static async open (dir) {
    checkDir(dir)
    return new CallLog(wrapNative(() => native.NativeLog.open(path.resolve(dir))), dir)
  }

  /**
   * Download the log `url` from peers (`opts.peers`, LIBVMS_PEERS, the peer registry) into `dir` (memory when
   * omitted), every entry verified against the signed tree. Resolves once complete; the log then follows live
   * appends (emitting `append`) until closed. Fails with ConnectionFailed / Timeout after `opts.timeout` ms.
   */
  static async fetch (url, dir, { peers, timeout = 10000 } = {}) {
    if (dir !== undefined && dir !== null) checkDir(dir)
    const m = typeof url === 'string' ? /^(?:dat:\/\/)?([0-9a-f]{64})\/?$/i.exec(url) : null
    if (!m) throw new BadArgumentError(`not a dat:// log URL: ${url}`)
    if (!Number.isSafeInteger(timeout) || timeout < 0) throw new BadArgumentError('timeout must be a non-negative integer (ms)')
    const list = resolvePeers(peers)
    if (dir) await fs.promises.mkdir(dir, { recursive: true })
    const core = await wrapNative(() => native.fetchLog(m[1].toLowerCase(), dir ? path.resolve(dir) : null, list, timeout))
    const log = new CallLog(core, dir || null)
    log._follow()
    return log
  }

  async _follow () {
    let seen = this.length
    while (this._core && !this._closing) {
      let n
      try {
        n = await this._core.waitAvailable(seen)
      } catch {
        return
      }
      if (this._closing || !this._core || n <= seen) return
      for (let i = seen; i < n; i++) this.emit('append', i)
      seen = n
      this._wake()
    }
  }

  get key () { return this._live().key }
  get discoveryKey () { return this._live().discoveryKey }
  get url () { return 'dat://' + this.key.toString('hex') }
  get length () { return this._core ? this._core.length : 0 }
  get byteLength () { return this._core ? this._core.byteLength : 0 }
  get writable () { return this._core ? this._core.writable : false }
  get closed () { return this._core === null }

  /** Append one entry (any JSON value); resolves with its index once it is durable. */
  async append (obj) {
    const block = encodeJSON(obj, 'call log entry')
    const seq = await wrapNative(() => this._live().append([block]))
    this.emit('append', seq)
    this._wake()
    return seq
  }

  appendInit ({ code, filesArchiveUrl } = {}) {
    return this.append({ type: 'init', code, filesArchiveUrl })
  }

  /**
   * `{type:'call', call:{methodName, args, userId?}, result:{filesVersion, res?, err?}}`. Absent fields stay absent;
   * `err` is the thrown error's name (falling back to its message). Extra fields (future: caller signature) are kept.
   */
  appendCall ({ userId, methodName, args, res, err, filesVersion, ...extra } = {}) {
    const call = { methodName, args }
    if (userId !== undefined) call.userId = userId
    const result = { filesVersion }
    if (res !== undefined) result.res = res
    if (err !== undefined && err !== null) result.err = errorName(err)
    return this.append({ type: 'call', call, result, ...extra })
  }

  /** Read entry `seq`, verified against the signed tree. `valueEncoding`: 'json' (default), 'utf-8', 'binary'. */
  async get (seq, opts = {}) {
    checkIndex(seq, 'seq')
    const { valueEncoding = 'json', wait = false, timeout = 0 } = opts || {}
    const decode = decoder(valueEncoding)
    if (seq >= this._live().length) {
      if (!wait) throw new OutOfBoundsError(`entry ${seq} is past the end of the log (length ${this.length})`)
      await this._waitFor(seq, timeout)
    }
    return decode(wrapNative(() => this._live().get(seq)), seq)
  }

  /** All entries in [start, end) as an array. Prefer `entries()` for long logs. */
  async list ({ start = 0, end, valueEncoding } = {}) {
    const out = []
    for await (const entry of this.entries({ start, end, valueEncoding })) out.push(entry)
    return out
  }

  /** Stream entries in [start, end) without holding them all; each read is verified. */
  async * entries ({ start = 0, end, valueEncoding = 'json' } = {}) {
    checkIndex(start, 'start')
    const decode = decoder(valueEncoding)
    const stop = end === undefined ? this._live().length : Math.min(end, this._live().length)
    for (let i = start; i < stop; i += READ_CHUNK) {
      const to = Math.min(stop, i + READ_CHUNK)
      const blocks = wrapNative(() => this._live().getRange(i, to))
      for (let j = 0; j < blocks.length; j++) yield decode(blocks[j], i + j)
    }
  }

  [Symbol.asyncIterator] () { return this.entries() }

  /** Check the signature and every entry; throws an IntegrityError naming the first bad index. */
  async verify () {
    await wrapNative(() => this._live().verify())
    return true
  }

  /** Flush and release the directory. Idempotent. */
  async close () {
    if (this._closing) return this._closing
    const core = this._core
    this._closing = (async () => {
      for (const w of this._waiters) w.reject(new ClosedError('call log closed'))
      this._waiters.clear()
      await wrapNative(() => core.close())
      this._core = null
      this.emit('close')
    })()
    return this._closing
  }

  _live () {
    if (!this._core || this._closing) throw new ClosedError('call log is closed')
    return this._core
  }

  _waitFor (seq, timeout) {
    return new Promise((resolve, reject) => {
      const waiter = { seq, resolve, reject, timer: null }
      if (timeout > 0) {
        waiter.timer = setTimeout(() => {
          this._waiters.delete(waiter)
          reject(new TimeoutError(`timed out waiting for entry ${seq}`))
        }, timeout)
      }
      this._waiters.add(waiter)
    })
  }

  _wake () {
    for (const w of this._waiters) {
      if (w.seq < this.length) {
        clearTimeout(w.timer)
        this._waiters.delete(w)
        w.resolve()
      }
    }
  }
}

function errorName (err) {
  if (typeof err === 'string') return err
  return (err && (err.name || err.message)) || String(err)
}

function decoder (valueEncoding) {
  switch (valueEncoding) {
    case 'json': return (buf, seq) => {
      try {
        return JSON.parse(buf.toString('utf8'))
      } catch (e) {
        throw new EncodingError(`entry ${seq} is not JSON: ${e.message}`, { index: seq })
      }
    }
    case 'utf8': case 'utf-8': return (buf) => buf.toString('utf8')
    case 'binary': case 'buffer': return (buf) => buf
    default: throw new BadArgumentError(`unknown valueEncoding ${JSON.stringify(valueEncoding)} (json, utf-8, binary)`)
  }
}

function checkDir (dir) {
  if (typeof dir !== 'string' || dir === '') throw new BadArgumentError('dir must be a non-empty string')
}

function checkIndex (n, what) {
  if (!Number.isSafeInteger(n) || n < 0) throw new BadArgumentError(`${what} must be a non-negative integer`)
}

module.exports = CallLog
