'use strict'
// VM: a script run as an auditable service. Every call goes into the call log; state lives in the files archive.
const { EventEmitter } = require('node:events')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const CallLog = require('./call-log')
const DatArchive = require('./dat-archive')
const SerialQueue = require('./serial-queue')
const { evaluate } = require('./sandbox')
const { toJSONText } = require('./json')
const { BadArgumentError, ClosedError } = require('./errors')

const CALL_LOG_DIR = 'call-log'
const FILES_DIR = 'files'
const META_FILE = 'meta.json'

class VM extends EventEmitter {
  /** @param {{auth?: 'debug'|'signed'}} [opts] 'signed': every RPC call must be signed (see README, Signed calls). */
  constructor (code, opts = {}) {
    super()
    if (typeof code !== 'string') throw new BadArgumentError('VM code must be a string')
    const { auth = 'debug' } = opts || {}
    if (auth !== 'debug' && auth !== 'signed') throw new BadArgumentError("auth must be 'debug' or 'signed'")
    this.id = crypto.randomUUID()
    this.code = code
    this.auth = auth
    this.dir = null
    this.exports = null
    this.filesArchive = null
    this.callLog = null
    this._system = null
    this._apis = new Map()
    this._queue = new SerialQueue()
    this._closing = null
    this._tmpDir = null
    this._replaying = false
    this._pending = null
  }

  /** Add `System[name]` for scripts evaluated from now on. */
  addAPI (name, methods) {
    if (typeof name !== 'string' || !name) throw new BadArgumentError('API name must be a non-empty string')
    this._apis.set(name, methods)
  }

  /**
   * Create (new dir) or reopen (dir with meta.json) the VM's archive and log, evaluate the script, and run its
   * `init` as a logged call. Resolves once `init` has finished; rejects with init's error if it throws.
   */
  async deploy ({ dir, title, url } = {}) {
    if (typeof dir !== 'string' || !dir) throw new BadArgumentError('deploy needs a dir')
    const meta = readMeta(dir)
    if (meta) {
      if (url && url !== meta.url) throw new BadArgumentError(`Mismatched url: ${dir} holds ${meta.url}, not ${url}`)
      await this._reopen(dir, meta)
      // A restart starts the script afresh: the log says so, so a replay does the same at this point.
      const restart = { type: 'restart' }
      const logged = await this._loggedCode()
      if (logged.code !== this.code) restart.code = this.code
      if (logged.auth !== this.auth) restart.auth = this.auth
      await this.callLog.append(restart)
    } else {
      await this._create(dir, title)
    }
    this._evaluate()
    if (typeof this.exports.init === 'function') await this.executeCall({ methodName: 'init', args: [] })
    this.emit('ready')
    return this
  }

  /** Run one exported function as a logged call. Calls run strictly one at a time, in the order they arrive. */
  async executeCall (call) {
    const outcome = await this._start(call)
    // The next call may start while this entry is being made durable (so concurrent calls share a group commit),
    // but this caller hears the outcome only once its entry is in the log.
    await outcome.durable
    if (outcome.threw) throw outcome.value
    return outcome.value
  }

  /**
   * Queue a call; resolves once it has run, before its entry is durable, with `{threw, value, resJSON, durable,
   * durableAt}`: `resJSON` the result as logged (undefined when there is none), `durable` a promise, `durableAt`
   * the log length that holds the entry. `argsParsed`: `args` come fresh from JSON.parse and nothing else holds
   * them (an RPC call), so the method may have them as they are.
   */
  _start ({ methodName, args = [], userId, extra } = {}, argsParsed = false) {
    return this._queue.push(() => this._execute(methodName, args, userId, argsParsed, extra))
  }

  /** Close the archive and the log (after the running call). Idempotent. */
  close () {
    if (!this._closing) this._closing = this._close()
    return this._closing
  }

  /**
   * Replay a call log into a fresh VM: entry 0 must be the init entry and name `filesArchiveUrl`; every later entry
   * is re-executed in order (errors are part of the log, not of the replay). Streams the log.
   */
  static async fromCallLog (callLog, { filesArchiveUrl } = {}, { dir, title, onProgress } = {}) {
    const init = await callLog.get(0).catch(() => null)
    if (!init || init.type !== 'init' || typeof init.code !== 'string') throw new BadArgumentError('Malformed call log')
    if (init.filesArchiveUrl !== filesArchiveUrl) {
      throw new BadArgumentError(`Mismatched files archive URL: the log names ${init.filesArchiveUrl}, not ${filesArchiveUrl}`)
    }
    // A signed VM's log is audited first: the first entry with a wrong signature or sequence number is named.
    await callLog._audit()
    const vm = new VM(init.code, { auth: init.auth === 'signed' ? 'signed' : 'debug' })
    let target = dir
    if (!target) {
      target = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-replay-'))
      vm._tmpDir = target
    }
    try {
      await vm._create(target, title || 'replay')
      vm._evaluate()
      // A replay need not wait for each entry to be durable: entries queue in order, and it waits once at the end.
      vm._replaying = true
      vm._pending = new PendingWrites()
      const total = callLog.length
      let done = 1
      for await (const entry of callLog.entries({ start: 1, end: total })) {
        await vm._replayEntry(entry)
        done++
        if (onProgress) onProgress(done, total)
      }
      await vm._pending.settled()
      vm._replaying = false
      return vm
    } catch (e) {
      await vm.close()
      throw e
    }
  }

  async _replayEntry (entry) {
    if (entry && entry.type === 'call' && entry.call) {
      const { methodName, args = [], userId } = entry.call
      // Errors are part of the log, not of the replay; durability is awaited once, at the end.
      const outcome = await this._queue.push(() => this._execute(methodName, args, userId, false, entry.auth === undefined ? undefined : { auth: entry.auth })).catch(() => null)
      if (outcome) this._pending.track(outcome.durable)
    } else if (entry && entry.type === 'restart') {
      if (typeof entry.code === 'string') this.code = entry.code
      this._pending.track(this.callLog.append(entry))
      this._evaluate()
    } else {
      // Unknown entry types are copied, so the replica's log stays comparable entry by entry.
      this._pending.track(this.callLog.append(entry))
    }
  }

  async _create (dir, title) {
    fs.mkdirSync(dir, { recursive: true })
    this.dir = dir
    this.filesArchive = await DatArchive.create({ localPath: path.join(dir, FILES_DIR), title })
    this.callLog = await CallLog.create(path.join(dir, CALL_LOG_DIR), this.code, this.filesArchive.url, { auth: this.auth })
    writeMeta(dir, { title, url: this.filesArchive.url })
  }

  async _reopen (dir, meta) {
    this.dir = dir
    this.filesArchive = new DatArchive(meta.url, { localPath: path.join(dir, FILES_DIR) })
    await this.filesArchive.ready()
    this.callLog = await CallLog.open(path.join(dir, CALL_LOG_DIR))
  }

  /** The code and the auth mode the log says the VM runs now. */
  async _loggedCode () {
    let code = null
    let auth = 'debug'
    for await (const entry of this.callLog.entries()) {
      if (entry.type === 'init' || (entry.type === 'restart' && typeof entry.code === 'string')) code = entry.code
      if (entry.type === 'init') auth = entry.auth === 'signed' ? 'signed' : 'debug'
      if (entry.type === 'restart' && typeof entry.auth === 'string') auth = entry.auth
    }
    return { code, auth }
  }

  _evaluate () {
    const { exports, System } = evaluate(this.code, { archive: this.filesArchive, apis: this._apis })
    this.exports = exports
    this._system = System
  }

  async _execute (methodName, args, userId, argsParsed = false, extra = undefined) {
    if (!this.callLog) throw new ClosedError('VM is closed')
    if (!Array.isArray(args)) throw new BadArgumentError('args must be an array')
    // The log keeps the arguments as they were passed (the method may change them), and the method sees exactly
    // what a replay will see: that text parsed. Arguments fresh from JSON.parse (RPC, a replay's) already are.
    const argsJSON = toJSONText(args, 'call arguments')
    const callArgs = argsParsed || this._replaying ? args : JSON.parse(argsJSON)
    this._system.caller.id = userId
    let res
    let err
    let threw = false
    try {
      const fn = Object.hasOwn(this.exports, methodName) ? this.exports[methodName] : undefined
      if (typeof fn !== 'function') throw new TypeError(`${methodName} is not a function`)
      res = fn.apply(this.exports, callArgs)
      if (res && typeof res.then === 'function') res = await res
    } catch (e) {
      threw = true
      err = e
    }
    const entry = { userId, methodName, filesVersion: this.filesArchive.version, err: undefined }
    // A signed call's signature members (crates/auth `entry_fields`: `auth`), kept beside the call.
    if (extra) Object.assign(entry, extra)
    let resJSON
    try {
      if (threw) entry.err = err == null ? String(err) : err
      else resJSON = toJSONText(res, 'call result')
    } catch (e) {
      // The result cannot be logged: the caller gets the encoding error, and so does the log (faithfully).
      threw = true
      err = e
      entry.err = e
    }
    const durable = this.callLog.enqueueCallJSON(entry, argsJSON, resJSON)
    return { durable, durableAt: this.callLog.queuedLength, threw, value: threw ? err : res, resJSON }
  }

  async _close () {
    await this._queue.drain()
    const { filesArchive, callLog } = this
    this.filesArchive = null
    this.callLog = null
    if (filesArchive) await filesArchive.close()
    if (callLog) await callLog.close()
    if (this._tmpDir) fs.rmSync(this._tmpDir, { recursive: true, force: true })
    this.emit('close')
  }
}

/** Appends a replay did not wait for: `settled()` waits for the last and rethrows the first failure. */
class PendingWrites {
  constructor () {
    this._last = Promise.resolve()
    this._error = null
  }

  track (durable) {
    const caught = durable.catch((e) => { if (!this._error) this._error = e })
    this._last = Promise.all([this._last, caught])
  }

  async settled () {
    await this._last
    if (this._error) throw this._error
  }
}

function readMeta (dir) {
  let text
  try {
    text = fs.readFileSync(path.join(dir, META_FILE), 'utf8')
  } catch (e) {
    if (e.code === 'ENOENT') return null
    throw e
  }
  try {
    return JSON.parse(text)
  } catch (e) {
    throw new BadArgumentError(`${path.join(dir, META_FILE)} is not valid JSON`)
  }
}

function writeMeta (dir, meta) {
  const file = path.join(dir, META_FILE)
  fs.writeFileSync(file + '.tmp', JSON.stringify(meta, null, 2))
  fs.renameSync(file + '.tmp', file)
}

module.exports = VM
