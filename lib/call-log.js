'use strict'
// CallLog: the signed, append-only log of a VM's calls, on a Hypercore-10 ledger core written in Rust.
const { EventEmitter } = require('node:events')
const path = require('node:path')
const fs = require('node:fs')

const native = require('./native')
const { wrapNative, fromData, BadArgumentError, ClosedError, OutOfBoundsError, TimeoutError, EncodingError } = require('./errors')
const { encodeJSON, toJSONText } = require('./json')
const { resolvePeers, noPeerError, knownSwarm } = require('./peers')
const { swarmConfig, lookup } = require('./swarm')

const READ_CHUNK = 512 // entries fetched from native per step when streaming
const READ_AHEAD = 256 // entries fetched at once when `get` is called sequentially
// Appends made in one turn of the event loop go to native together (one promise across the boundary instead of
// one per entry; calls arriving over RPC in the same turn share a commit);
// a burst larger than this is sent at once, so memory stays bounded during a replay.
const MAX_BATCH_ENTRIES = 1024
const MAX_BATCH_BYTES = 1 << 20

class CallLog extends EventEmitter {
  /** @param {object} core a native ledger handle; use CallLog.create / CallLog.open instead. */
  constructor (core, dir) {
    super()
    this._core = core
    this.dir = dir
    this._closing = null
    this._waiters = new Set()
    this._batch = null
    this._inline = true // may commit a lone entry on the JS thread (see _send)
    this._run = null // the last read-ahead run of blocks (see _readAhead)
    this._audited = null // {length, result} of the last signed-call audit (see _audit)
    this._lastGet = -2
    this._next = -1 // the index the next entry will have, once one was queued here or committed from Rust
  }

  /** Create a new log in `dir` whose entry 0 is `{type:'init', code, filesArchiveUrl}`. */
  static async create (dir, code, filesArchiveUrl, opts = {}) {
    checkDir(dir)
    if (typeof code !== 'string') throw new BadArgumentError('code must be a string')
    await fs.promises.mkdir(dir, { recursive: true })
    const log = new CallLog(wrapNative(() => native.NativeLog.create(path.resolve(dir))), dir)
    try {
      await log.appendInit({ code, filesArchiveUrl, auth: opts && opts.auth, deterministic: opts && opts.deterministic, apis: opts && opts.apis })
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
   * `opts.swarm: true` also looks the log up on the public Hyperswarm DHT; `opts.bootstrap` (or LIBVMS_BOOTSTRAP)
   * on a private one.
   */
  static async fetch (url, dir, { peers, timeout = 10000, swarm, bootstrap, _onProgress } = {}) {
    if (dir !== undefined && dir !== null) checkDir(dir)
    const m = typeof url === 'string' ? /^(?:dat:\/\/)?([0-9a-f]{64})\/?$/i.exec(url) : null
    if (!m) throw new BadArgumentError(`not a dat:// log URL: ${url}`)
    if (!Number.isSafeInteger(timeout) || timeout < 0) throw new BadArgumentError('timeout must be a non-negative integer (ms)')
    const list = resolvePeers(peers)
    // No peer and no DHT option: the DHT a swarm peer was found on before, if any (lib/peers.js).
    const config = swarmConfig({ swarm, bootstrap }) || (list.length === 0 ? knownSwarm() : null)
    if (list.length === 0 && !config) throw noPeerError(url)
    if (dir) await fs.promises.mkdir(dir, { recursive: true })
    const key = m[1].toLowerCase()
    const dirPath = dir ? path.resolve(dir) : null
    if (!config && !_onProgress) {
      const core = await wrapNative(() => native.fetchLog(key, dirPath, list, timeout))
      const log = new CallLog(core, dir || null)
      log._follow()
      return log
    }
    // A fetcher that can take DHT links as they are found, and tells how far it got.
    const fetcher = new native.NativeSwarmFetch()
    const found = config ? lookup(config, wrapNative(() => native.discoveryKey(key)), fetcher) : null
    let core
    // `_onProgress(held, length)` (the CLI's bar) while the download runs.
    const ticker = _onProgress && setInterval(() => _onProgress(...fetcher.progress()), 100)
    try {
      core = await wrapNative(() => fetcher.fetchLog(key, dirPath, list, timeout))
    } catch (e) {
      if (found) await found.destroy()
      throw e
    } finally {
      if (ticker) clearInterval(ticker)
    }
    if (_onProgress) _onProgress(...fetcher.progress())
    const log = new CallLog(core, dir || null)
    log._swarm = found // left once the log is closed
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

  /**
   * Never commit on the JavaScript thread: for a log whose durability is awaited in Rust (a VM mounted on an RPC
   * server), where an inline sync saves no hop and only holds up the event loop.
   */
  _commitOffThread () {
    this._inline = false
  }

  /** The index the next entry queued (here or from Rust, in order) will have: a call's Math.random seed. */
  get _nextIndex () { return this._next < 0 ? this.length : this._next }

  /** One more entry is on its way into the log (queued here, or committed from Rust by an RPC server). */
  _countEntry () { this._next = this._nextIndex + 1 }

  /** Hand the entries queued in this turn to the writer now: an entry committed from Rust must come after them. */
  _sendQueued () {
    if (this._batch) this._send(this._batch)
  }

  /** The error that stopped this log's commits (a failed sync, a full disk), or null; closing is not one. */
  _failure () {
    const failure = this._core ? this._core.failure : null
    return failure ? fromData(failure) : null
  }

  /** Append one entry (any JSON value); resolves with its index once it is durable. */
  append (obj) {
    try {
      return this.enqueue(obj)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /**
   * Like `append`, but an entry that cannot be encoded throws here, synchronously, and nothing is queued. Entries
   * are queued in call order, so a caller may go on before the returned promise (durability) settles.
   */
  enqueue (obj) {
    return this._enqueueBlock(encodeJSON(obj, 'call log entry'))
  }

  /** Queue one encoded entry for the turn's commit; resolves with its index once durable. */
  _enqueueBlock (block) {
    const core = this._live()
    this._countEntry()
    let batch = this._batch
    if (!batch) {
      batch = this._batch = { blocks: [], bytes: 0, sent: deferred(), done: false }
      turn.add(this)
    }
    const k = batch.blocks.push(block) - 1
    batch.bytes += block.length
    if (batch.blocks.length >= MAX_BATCH_ENTRIES || batch.bytes >= MAX_BATCH_BYTES) this._send(batch)
    return batch.sent.promise.then((first) => {
      const seq = first + k
      this.emit('append', seq)
      this._wake()
      return seq
    })
  }

  /**
   * Hand a batch of queued entries to the ledger's group commit (once). `inline`: the only entry appended in this
   * process in this turn, with no other commit under way anywhere.
   */
  _send (batch, inline = false) {
    if (this._batch === batch) this._batch = null
    if (batch.done) return
    batch.done = true
    if (inline && batch.blocks.length === 1) {
      // A lone entry: commit here, at once (no thread hops: the lowest latency for a lone caller). Concurrent
      // callers, of this log or of others, go to the writer threads, whose group commits keep the event loop free
      // while the disks sync (an inline sync would hold up every other log behind it).
      try {
        batch.sent.resolve(wrapNative(() => this._live().appendNow(batch.blocks)))
      } catch (e) {
        batch.sent.reject(e)
      }
      return
    }
    let appended
    try {
      appended = wrapNative(() => this._live().append(batch.blocks))
    } catch (e) {
      appended = Promise.reject(e)
    }
    turn.inFlight++
    const done = () => { turn.inFlight-- }
    appended.then(done, done)
    appended.then(batch.sent.resolve, batch.sent.reject)
  }

  appendInit ({ code, filesArchiveUrl, auth, deterministic, apis } = {}) {
    // Signed mode, deterministic mode and addAPI names are recorded in the init entry when present; otherwise the
    // entry stays as it always was.
    const init = auth === 'signed' ? { type: 'init', code, filesArchiveUrl, auth } : { type: 'init', code, filesArchiveUrl }
    if (deterministic === true) init.deterministic = true
    if (apis !== undefined) init.apis = apis
    return this.append(init)
  }

  /** Check every signed call (crates/auth): a VerificationError names the first bad entry. Resolves with whether the
   * log ends in signed mode. */
  _audit (length = this.length) {
    // An append-only log audited up to a length stays audited: a replay and the compare after it (as in
    // `libvms verify`) walk it once, not twice. A failed audit is not kept. An audit walks the snapshot it was
    // given: a fetched log following its host may know a signed length whose last blocks are still arriving.
    if (this._audited && this._audited.length === length) return this._audited.result
    const result = wrapNative(() => native.auditLog(this._live(), length))
    const audited = { length, result }
    this._audited = audited
    result.catch(() => { if (this._audited === audited) this._audited = null })
    return result
  }

  /**
   * `{type:'call', call:{methodName, args, userId?}, result:{filesVersion, res?, err?}}`. Absent fields stay absent;
   * `err` is the thrown error's name (falling back to its message). Extra fields (future: caller signature) are kept.
   */
  appendCall (call) {
    try {
      return this.enqueueCall(call)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** `appendCall` with `enqueue`'s contract: encoding errors throw synchronously. */
  enqueueCall (call) {
    const c = call || {}
    const args = toJSONText(c.args, 'call arguments')
    return this.enqueueCallJSON(c, args, toJSONText(c.res, 'call result'))
  }

  /**
   * `enqueueCall` with the arguments and the result given as JSON text (`argsJSON`, `resJSON`; undefined: no
   * result), which the entry holds as they are: a VM encodes them once, for the log and for its caller.
   */
  enqueueCallJSON (call, argsJSON, resJSON) {
    return this._enqueueBlock(Buffer.from(callEntryJSON(call, argsJSON, resJSON)))
  }

  /** Read entry `seq`, verified against the signed tree. `valueEncoding`: 'json' (default), 'utf-8', 'binary'. */
  async get (seq, opts = {}) {
    checkIndex(seq, 'seq')
    const { valueEncoding = 'json', wait = false, timeout = 0 } = opts || {}
    const decode = decoder(valueEncoding)
    // An entry of the current read-ahead run exists: no need to ask native for the length.
    const held = this._heldRun(seq)
    if (!held && seq >= this._live().length) {
      if (!wait) throw new OutOfBoundsError(`entry ${seq} is past the end of the log (length ${this.length})`)
      await this._waitFor(seq, timeout)
    }
    const run = held || this._readAhead(seq)
    if (run) {
      const from = seq === run.start ? 0 : run.ends[seq - run.start - 1]
      const to = run.ends[seq - run.start]
      // An all-ASCII run (the usual case) is decoded to text once; byte offsets are then string offsets.
      if (run.text === undefined) {
        const text = run.data.toString('latin1')
        run.text = /^[\x00-\x7f]*$/.test(text) ? text : null
      }
      if (run.text !== null && valueEncoding === 'json') return decodeText(run.text.slice(from, to), seq)
      return decode(run.data, seq, from, to)
    }
    return decode(wrapNative(() => this._live().get(seq)), seq)
  }

  /**
   * Sequential `get`s (each the one after the last) read ahead: one verified run of blocks per READ_AHEAD entries
   * instead of a native call each. Blocks never change once written, so the run stays valid. Returns a new run
   * starting at `seq`, or null for a single read.
   */
  _readAhead (seq) {
    const sequential = seq === this._lastGet + 1
    this._lastGet = seq
    if (!sequential) return null
    const end = Math.min(this._live().length, seq + READ_AHEAD)
    this._run = wrapNative(() => this._live().getRange(seq, end))
    this._run.start = seq
    return this._run
  }

  /** The current read-ahead run if it holds `seq` and the log is open, else null. */
  _heldRun (seq) {
    const run = this._run
    if (!run || !this._core || this._closing) return null
    return seq >= run.start && seq < run.start + run.ends.length ? run : null
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
    yield * this._decoded(start, end, decoder(valueEncoding))
  }

  /** Entries in [start, end), each read verified and given to `decode(buf, seq, from, to)` (see `decoder`). */
  async * _decoded (start, end, decode) {
    const stop = end === undefined ? this._live().length : Math.min(end, this._live().length)
    for (let i = start; i < stop; i += READ_CHUNK) {
      const to = Math.min(stop, i + READ_CHUNK)
      const { data, ends } = wrapNative(() => this._live().getRange(i, to))
      for (let j = 0, from = 0; j < ends.length; from = ends[j++]) yield decode(data, i + j, from, ends[j])
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
    // Entries queued in this tick are appended before the log closes.
    if (this._batch) this._send(this._batch)
    this._closing = (async () => {
      for (const w of this._waiters) w.reject(new ClosedError('call log closed'))
      this._waiters.clear()
      await wrapNative(() => core.close())
      this._core = null
      if (this._swarm) await this._swarm.destroy()
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

/**
 * The logs with entries queued in this turn of the event loop, sent together once the turn ends; and how many
 * batches, across every log of the process, the writer threads are committing.
 */
const turn = {
  logs: new Set(),
  inFlight: 0,
  add (log) {
    if (this.logs.size === 0) setImmediate(() => this.flush())
    this.logs.add(log)
  },
  flush () {
    const logs = [...this.logs]
    this.logs.clear()
    const inline = logs.length === 1 && this.inFlight === 0 && logs[0]._inline
    for (const log of logs) if (log._batch) log._send(log._batch, inline)
  }
}

function deferred () {
  let resolve, reject
  const promise = new Promise((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

const CALL_FIELDS = new Set(['userId', 'methodName', 'args', 'res', 'err', 'filesVersion'])

/**
 * The text of `{type:'call', call:{methodName, args, userId?}, result:{filesVersion, res?, err?}, ...extra}`, as
 * JSON.stringify of that object would write it (members without JSON text left out), with args and res given as
 * JSON text. Written out by hand: this runs once per call.
 */
function callEntryJSON (c, argsJSON, resJSON) {
  const call = [member('methodName', c.methodName), raw('args', argsJSON), member('userId', c.userId)]
  const err = c.err === undefined || c.err === null ? undefined : errorName(c.err)
  const result = [member('filesVersion', c.filesVersion), raw('res', resJSON), member('err', err)]
  let text = '{"type":"call","call":{' + joined(call) + '},"result":{' + joined(result) + '}'
  for (const k in c) {
    const extra = CALL_FIELDS.has(k) ? '' : member(k, c[k])
    if (extra !== '') text += ',' + extra
  }
  return text + '}'
}

/**
 * What Rust needs to write the entry `callEntryJSON` would (crates/calllog entry.rs builds the rest from the call
 * it holds): `errJSON`, the `err` member's JSON text (undefined: none); `extraJSON`, every extra member in order as
 * JSON text of `[[key, valueJSON], ...]` (undefined: none). Signatures, limit stops and oracle records all travel
 * this way.
 */
function entryParts (c) {
  const err = c.err === undefined || c.err === null ? undefined : toJSONText(errorName(c.err), 'err')
  let extra
  for (const k in c) {
    const json = CALL_FIELDS.has(k) ? undefined : toJSONText(c[k], k)
    if (json !== undefined) (extra || (extra = [])).push([k, json])
  }
  return { errJSON: err, extraJSON: extra && JSON.stringify(extra) }
}

/** `"key":json`, or '' when the value has no JSON text (JSON.stringify leaves such members out). */
function member (key, value) {
  return raw(key, toJSONText(value, key))
}

function raw (key, json) {
  return json === undefined ? '' : JSON.stringify(key) + ':' + json
}

function joined (members) {
  return members.filter((m) => m !== '').join(',')
}

function errorName (err) {
  if (typeof err === 'string') return err
  return (err && (err.name || err.message)) || String(err)
}

function decodeText (text, seq) {
  try {
    return JSON.parse(text)
  } catch (e) {
    throw new EncodingError(`entry ${seq} is not JSON: ${e.message}`, { index: seq })
  }
}

function decoder (valueEncoding) {
  switch (valueEncoding) {
    // (buf, seq, from, to): the entry is buf[from, to), all of buf when from/to are absent.
    case 'json': return (buf, seq, from, to) => decodeText(buf.toString('utf8', from, to), seq)
    case 'utf8': case 'utf-8': return (buf, seq, from, to) => buf.toString('utf8', from, to)
    case 'binary': case 'buffer': return (buf, seq, from, to) => from === undefined ? buf : buf.subarray(from, to)
    default: throw new BadArgumentError(`unknown valueEncoding ${JSON.stringify(valueEncoding)} (json, utf-8, binary)`)
  }
}

function checkDir (dir) {
  if (typeof dir !== 'string' || dir === '') throw new BadArgumentError('dir must be a non-empty string')
}

function checkIndex (n, what) {
  if (!Number.isSafeInteger(n) || n < 0) throw new BadArgumentError(`${what} must be a non-negative integer`)
}

CallLog.entryParts = entryParts
CallLog.callEntryJSON = callEntryJSON

module.exports = CallLog
