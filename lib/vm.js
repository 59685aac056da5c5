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
const { Sandbox, resolveLimits, rebuildError, limitError } = require('./sandbox')
const oracles = require('./sandbox/oracles')
const { toJSONText } = require('./json')
const { clearReplica } = require('./replica-dir')
const snapshot = require('./snapshot')
const { replayEntries, enqueueReplayed } = require('./replay-entries')
const { recoverFiles, clearUnfinishedCreate } = require('./recovery')
const { BadArgumentError, ClosedError, EncodingError, LimitError, StorageIOError, VerificationError } = require('./errors')
const debug = require('./debug')('libvms:vm')

const CALL_LOG_DIR = 'call-log'
const FILES_DIR = 'files'
const META_FILE = 'meta.json'
const REPLAY_WINDOW = 256 // calls a replay keeps queued ahead

class VM extends EventEmitter {
  /**
   * `limits`: `{callTimeoutMs, memoryMb}` for the script (see lib/sandbox; defaults 10 s, 256 MB). `auth`: 'debug'
   * (default) or 'signed': every RPC call must be signed (see README, Signed calls). `deterministic` (default true):
   * Math.random and Date come from the log (see README, Deterministic execution).
   */
  constructor (code, { limits, auth = 'debug', deterministic = true } = {}) {
    super()
    if (typeof code !== 'string') throw new BadArgumentError('VM code must be a string')
    if (auth !== 'debug' && auth !== 'signed') throw new BadArgumentError("auth must be 'debug' or 'signed'")
    if (typeof deterministic !== 'boolean') throw new BadArgumentError('deterministic must be a boolean')
    this.deterministic = deterministic
    this._ahead = 0 // calls queued whose entries are not yet queued in the log (for their entry index)
    this._lastTime = undefined // the last call time the log holds (what the clock reads outside a call)
    this._seedKey = null // a replica seeds Math.random from the replayed log's key, not its own
    this._loggedApis = undefined // JSON of the addAPI names the log last recorded
    this._replayFailure = null
    this.limits = resolveLimits(limits)
    this.id = crypto.randomUUID()
    this.code = code
    this.auth = auth
    this.dir = null
    this.exports = null
    this.filesArchive = null
    this.callLog = null
    this._sandbox = null
    this._needsRestart = false // the script was stopped by a limit: restart it (logged) before the next call
    this._apis = new Map()
    this._queue = new SerialQueue()
    this._closing = null
    this._tmpDir = null
    this._replaying = false
    this._pending = null
    /** Set once a storage failure (full disk, I/O error) hit a call or its commit: no call runs until reopened. */
    this._stopped = null
    /** After a reopen: what crash recovery undid (`{filesVersion, writesUndone, contentBlocks}`), or null. */
    this.recovery = null
  }

  /** Add `System[name]` for scripts evaluated from now on. */
  addAPI (name, methods) {
    if (typeof name !== 'string' || !name) throw new BadArgumentError('API name must be a non-empty string')
    this._apis.set(name, methods)
  }

  /**
   * Create (new dir) or reopen (dir with meta.json) the VM's archive and log, evaluate the script, and run its
   * `init` as a logged call. Resolves once `init` has finished. On a first deploy, rejects with init's error if it
   * throws; on a restart, init's error is only logged (as any call's) and emitted as 'warning': the VM's data must
   * stay servable even when init is not idempotent (libvms 2 did not await init at all).
   */
  async deploy ({ dir, title, url } = {}) {
    if (typeof dir !== 'string' || !dir) throw new BadArgumentError('deploy needs a dir')
    const meta = readMeta(dir)
    const restarting = Boolean(meta)
    if (meta) {
      if (url && url !== meta.url) throw new BadArgumentError(`Mismatched url: ${dir} holds ${meta.url}, not ${url}`)
      await this._reopen(dir, meta)
      // A restart starts the script afresh: the log says so, so a replay does the same at this point.
      const restart = { type: 'restart' }
      const logged = await this._loggedCode()
      if (logged.code !== this.code) restart.code = this.code
      if (logged.auth !== this.auth) restart.auth = this.auth
      if (logged.deterministic !== this.deterministic) restart.deterministic = this.deterministic
      this._lastTime = logged.time
      this._loggedApis = logged.apis
      this._noteApis(restart)
      await this.callLog.append(restart)
    } else {
      if (clearUnfinishedCreate(dir, FILES_DIR, CALL_LOG_DIR)) debug('%s: removed a create that a crash cut short', dir)
      await this._create(dir, title)
    }
    await this._evaluate()
    if (typeof this.exports.init === 'function') {
      const outcome = await this._start({ methodName: 'init', args: [] })
      const index = await outcome.durable // a storage failure always rejects
      if (outcome.threw) {
        if (!restarting) {
          this._initFailed = true // tells the CLI the error came from init
          throw outcome.value
        }
        const warning = new Error(`init threw on restart (logged as entry ${index}; the VM serves anyway): ${errorText(outcome.value)}`)
        warning.name = 'InitWarning'
        warning.cause = outcome.value
        warning.entry = index
        this.emit('warning', warning)
      }
    }
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
   * Queue a call; resolves once it has run, before its entry is durable, with `{threw, value, resJSON, durable}`:
   * `resJSON` the result as logged (undefined when there is none), `durable` a promise of the entry's index.
   * `argsJSON`: the arguments as JSON text instead of `args`. `commit(filesVersion, resJSON, errJSON, extraJSON)`:
   * the caller makes the entry and commits it (an RPC server, in Rust); `durable` is then null.
   */
  _start ({ methodName, args = [], argsJSON, userId, commit } = {}) {
    // The index its entry will have (the calls queued ahead each make one): it seeds the call's Math.random.
    const fx = { index: this.callLog ? this.callLog._nextIndex + this._ahead : 0, counted: true }
    this._ahead++
    const early = this._send(methodName, args, userId, argsJSON, fx)
    const uncount = () => { if (fx.counted) { fx.counted = false; this._ahead-- } }
    const run = this._queue.push(() => this._execute(methodName, args, userId, early, undefined, commit, argsJSON, fx))
    run.then(uncount, uncount)
    return run
  }

  /**
   * Send a call to the script's worker at once, before the calls ahead of it have finished (the worker runs them
   * in order), so the thread hop overlaps with them. Returns `{argsJSON, outcome}`, or null where the call must
   * wait for its turn (no running script, or arguments that `_execute` refuses).
   */
  _send (methodName, args, userId, argsJSON, fx) {
    if (!this._sandbox || !this._sandbox.alive || this._needsRestart || !this.callLog) return null
    if (argsJSON === undefined) {
      if (!Array.isArray(args)) return null
      try {
        argsJSON = toJSONText(args, 'call arguments')
      } catch (_) {
        return null
      }
    }
    return { argsJSON, outcome: this._sandbox.call(methodName, argsJSON, userId, fx) }
  }

  /**
   * Stop the script's running call now, as a limit would (`reason` is logged as `stopped`); the script restarts
   * before the next call. A host's shutdown uses it so that a spinning script cannot hold it up.
   */
  stopScript (reason = 'shutdown') {
    if (this._sandbox) this._sandbox.stop(reason)
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
  static async fromCallLog (callLog, { filesArchiveUrl } = {}, { dir, title, onProgress, length, head } = {}) {
    // The snapshot, fixed before anything awaits: exactly entries 0..L-1 are replayed, however the log grows.
    const total = snapshot.snapshotLength(callLog, length, head)
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 1 || length > callLog.length)) {
      throw new BadArgumentError(`length must be an integer from 1 to the log's length (${callLog.length})`)
    }
    const init = await callLog.get(0).catch(() => null)
    if (!init || init.type !== 'init' || typeof init.code !== 'string') throw new BadArgumentError('Malformed call log')
    if (init.filesArchiveUrl !== filesArchiveUrl) {
      throw new BadArgumentError(`Mismatched files archive URL: the log names ${init.filesArchiveUrl}, not ${filesArchiveUrl}`)
    }
    // The signed head held for the snapshot (covering 0..L-1): the log must still hold its tree once replayed.
    const held = await snapshot.holdHead(callLog, head)
    // A signed VM's log is audited first: the first entry with a wrong signature or sequence number is named.
    await callLog._audit(total)
    // A folder holding an earlier replica of this log is replayed afresh; anything else there is refused.
    if (dir) await clearReplica(dir, callLog.url, { meta: META_FILE, log: CALL_LOG_DIR, parts: [FILES_DIR, CALL_LOG_DIR] })
    // Deterministic mode as the log says (an old log without the flag replays as it always did); the replica offers
    // the logged addAPI names, and every use is served from the log.
    const vm = new VM(init.code, { auth: init.auth === 'signed' ? 'signed' : 'debug', deterministic: init.deterministic === true })
    vm._apis = oracles.replayAPIs(init.apis)
    vm._seedKey = callLog.key.toString('hex')
    let target = dir
    if (!target) {
      target = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-replay-'))
      vm._tmpDir = target
    }
    try {
      await vm._create(target, title || 'replay')
      if (dir) writeMeta(target, { ...readMeta(target), replicaOf: callLog.url })
      await vm._evaluate()
      // A replay need not wait for each entry to be durable: entries queue in order, and it waits once at the end.
      vm._replaying = true
      vm._sandbox.deferFlush = true
      vm._pending = new PendingWrites()
      // onProgress counts log entries, init included: (1, total) once the init entry is in, then up to (total, total).
      let done = 1
      if (onProgress) onProgress(done, total)
      for await (const entry of replayEntries(callLog, { start: 1, end: total })) {
        await vm._pending.room()
        await vm._replayEntry(entry, done)
        if (vm._replayFailure) throw vm._replayFailure
        done++
        if (onProgress) onProgress(done, total)
      }
      await vm._queue.drain()
      if (vm._replayFailure) throw vm._replayFailure
      await vm._pending.settled()
      vm._replaying = false
      await snapshot.checkHead(held, callLog) // a ForkError if the log now tells another history up to L
      vm.replayedHead = held
      return vm
    } catch (e) {
      await vm.close()
      throw e
    }
  }

  /**
   * An audit that follows a growing log: replay its entries start..end-1 into this replica (made by fromCallLog,
   * which replayed 0..start-1), in order, and wait until they are durable.
   */
  async _replayMore (callLog, start, end) {
    this._replaying = true
    this._sandbox.deferFlush = true
    this._pending = new PendingWrites()
    try {
      for await (const entry of replayEntries(callLog, { start, end })) {
        await this._pending.room()
        await this._replayEntry(entry)
      }
      await this._queue.drain()
      await this._pending.settled()
    } finally {
      this._replaying = false
    }
  }

  /**
   * Calls are sent to the script ahead of their turn (up to REPLAY_WINDOW queued), so the thread hop overlaps;
   * everything else waits for its turn in the same queue, so the replica's log keeps the entries' order.
   */
  async _replayEntry (entry, index) {
    const copy = () => { this._pending.track(this.callLog.append(entry)) }
    if (entry && entry.type === 'call' && entry.stopped !== undefined) {
      // Stopped by a limit on the host: the host's word, never re-run (its effects were discarded there too).
      this._queue.push(copy)
    } else if (entry && entry.type === 'call' && entry.call) {
      const { methodName, args = [], userId } = entry.call
      // The call gets its logged time and oracle outcomes; a use it makes that the log does not hold fails the replay.
      const fx = {
        entry: index,
        index: entry.seed !== undefined ? entry.seed : index,
        time: entry.time === undefined ? 'none' : entry.time,
        recorded: oracles.recordedOf(entry)
      }
      // Errors are part of the log, not of the replay; durability is awaited once, at the end.
      const early = this._send(methodName, args, userId, undefined, fx)
      const run = this._queue.push(() => this._execute(methodName, args, userId, early, entry.auth === undefined ? undefined : { auth: entry.auth }, undefined, undefined, fx))
        .then((outcome) => this._pending.track(outcome.durable), (e) => {
          if (e && (e.code === 'VERIFICATION_MISMATCH' || e.replayed) && !this._replayFailure) this._replayFailure = e
        })
      if (this._queue.pending > REPLAY_WINDOW) await run
    } else if (entry && entry.type === 'restart') {
      await this._queue.push(async () => {
        if (typeof entry.code === 'string') this.code = entry.code
        if (typeof entry.deterministic === 'boolean') this.deterministic = entry.deterministic
        if (entry.apis !== undefined) this._apis = oracles.replayAPIs(entry.apis)
        copy()
        await this._evaluate()
      })
    } else {
      // Unknown entry types are copied, so the replica's log stays comparable entry by entry.
      this._queue.push(copy)
    }
  }

  async _create (dir, title) {
    fs.mkdirSync(dir, { recursive: true })
    this.dir = dir
    this.filesArchive = await DatArchive.create({ localPath: path.join(dir, FILES_DIR), title })
    const apis = oracles.namesOf(this._apis)
    this.callLog = await CallLog.create(path.join(dir, CALL_LOG_DIR), this.code, this.filesArchive.url, { auth: this.auth, deterministic: this.deterministic, apis })
    this._loggedApis = JSON.stringify(apis)
    writeMeta(dir, { title, url: this.filesArchive.url })
  }

  async _reopen (dir, meta) {
    this.dir = dir
    this.filesArchive = new DatArchive(meta.url, { localPath: path.join(dir, FILES_DIR) })
    await this.filesArchive.ready()
    this.callLog = await CallLog.open(path.join(dir, CALL_LOG_DIR))
    // Writes of calls whose entries never became durable (a crash, a failed commit) are undone.
    this.recovery = await recoverFiles(this.callLog, this.filesArchive)
    if (this.recovery) {
      const { filesVersion, writesUndone, contentBlocks } = this.recovery
      debug('%s: rolled the files archive back to version %d (%d writes, %d content blocks undone)', dir, filesVersion, writesUndone, contentBlocks)
      this.emit('recovery', this.recovery)
    }
  }

  /**
   * Undo every archive write made after `version` (durably: a Hypercore truncation of both of the archive's logs).
   * Resolves with `{writesUndone, contentBlocks}`. For a call that must leave no trace (stopped by a limit).
   */
  async _rollbackFiles (version) {
    const { writes, contentBlocks } = await this.filesArchive._truncate(version)
    return { writesUndone: writes, contentBlocks }
  }

  /** Stop running calls after a storage failure: what the archive or the log holds can no longer be trusted. */
  _stop (cause) {
    if (this._stopped) return
    debug('%s: storage failure, calls stopped until the VM is reopened: %s', this.dir, cause && cause.message)
    this._stopped = new StorageIOError(`the VM stopped after a storage failure (${cause && cause.message}); reopen it`)
    this.emit('stopped', cause)
  }

  /** The code, auth mode, deterministic mode and addAPI names the log says the VM runs now, and its last call time. */
  async _loggedCode () {
    let code = null
    let auth = 'debug'
    let deterministic = false
    let apis
    let time
    for await (const entry of this.callLog.entries()) {
      if (entry.type === 'init' || (entry.type === 'restart' && typeof entry.code === 'string')) code = entry.code
      if (entry.type === 'init') {
        auth = entry.auth === 'signed' ? 'signed' : 'debug'
        deterministic = entry.deterministic === true
        apis = JSON.stringify(entry.apis)
      }
      if (entry.type === 'restart' && typeof entry.auth === 'string') auth = entry.auth
      if (entry.type === 'restart' && typeof entry.deterministic === 'boolean') deterministic = entry.deterministic
      if (entry.type === 'restart' && entry.apis !== undefined) apis = JSON.stringify(entry.apis)
      if (entry.type === 'call' && typeof entry.time === 'number') time = entry.time
    }
    return { code, auth, deterministic, apis, time }
  }

  /** A restart entry names the addAPI members when they differ from what the log last recorded (a replay needs them). */
  _noteApis (restart) {
    const apis = oracles.namesOf(this._apis)
    const text = JSON.stringify(apis)
    if (text !== this._loggedApis) {
      restart.apis = apis || {}
      this._loggedApis = text
    }
    return restart
  }

  /** Start the script afresh in a new sandbox (a worker thread holding its hardened context). */
  async _evaluate () {
    if (this._sandbox) this._sandbox.close()
    // Deterministic mode: Math.random is seeded from the log's key and the entry index (here the last entry's, for
    // the script's load); the clock reads the last logged call time outside calls.
    const clock = this.deterministic
      ? { seedKey: this._seedKey || this.callLog.key.toString('hex'), seedIndex: this.callLog._nextIndex - 1, time: this._lastTime }
      : undefined
    const sandbox = new Sandbox({ code: this.code, limits: this.limits, files: () => this.filesArchive, apis: this._apis, clock })
    sandbox.deferFlush = this._replaying
    this._sandbox = sandbox
    this._needsRestart = false
    sandbox.on('fault', (e) => {
      // Thrown outside any call (a timer, an unhandled rejection): the script goes on; the host is told.
      debug('script error outside a call: %s', e.message)
      this.emit('scriptError', e)
    })
    sandbox.on('stopped', () => { this._needsRestart = true })
    this.exports = hostExports(this, await sandbox.start())
  }

  /**
   * The invocation step of a call: run `methodName` in the sandbox. Returns `{threw, value, stopped}`; `stopped`
   * (a limit's name) when the call was stopped, its archive writes discarded and the script due for a restart.
   */
  async _invoke (methodName, argsJSON, userId, sent, fx = {}) {
    let outcome = sent ? await sent : { kind: 'lost' }
    if (outcome.kind === 'lost') {
      if (this._needsRestart) {
        try {
          await this._restartAfterLimit()
        } catch (e) {
          // The script did not come back (its load hit a limit): this call is stopped too, and the next one tries
          // again. A replay copies the stop either way.
          this._needsRestart = true
          return { threw: true, value: e, stopped: e.stopped || 'restart' }
        }
      }
      // Sent now, at its turn: every entry ahead of it is queued, so its index is the log's queued length.
      if (!this._replaying) fx.index = this.callLog._nextIndex
      outcome = await this._sandbox.call(methodName, argsJSON, userId, fx)
    }
    // What the call read from outside: the clock (deterministic mode) and its oracle uses.
    const fxOut = { time: outcome.time, oracles: outcome.oracles, divergence: outcome.divergence }
    switch (outcome.kind) {
      case 'value': return { threw: false, value: outcome.text === undefined ? undefined : JSON.parse(outcome.text), resJSON: outcome.text, ...fxOut }
      case 'error': return { threw: true, value: rebuildError(outcome.name, outcome.message, outcome.line), ...fxOut }
      case 'thrown': return { threw: true, value: outcome.text === undefined ? undefined : JSON.parse(outcome.text), ...fxOut }
      case 'encoding': return { threw: true, value: new EncodingError(`call result is not JSON-serialisable: ${outcome.message}`), ...fxOut }
    }
    this._needsRestart = true
    const err = limitError(outcome.stopped, this.limits)
    await outcome.settled
    const versionBefore = outcome.versionBefore // the archive before the stopped call's first write, if it wrote
    if (versionBefore !== undefined && this.filesArchive.version !== versionBefore) {
      try {
        await this._rollbackFiles(versionBefore)
      } catch (e) {
        err.message += `; its archive writes could not be discarded (${e.message})`
      }
    }
    return { threw: true, value: err, stopped: outcome.stopped, oracles: outcome.oracles }
  }

  /** The restart after a limit stop, logged like any restart: fresh script, then its `init` as a logged call. */
  async _restartAfterLimit () {
    for (let runInit = true; this._needsRestart; runInit = false) {
      // A failed commit reaches callers through the entries after this one.
      this.callLog.enqueue(this._noteApis({ type: 'restart' })).catch(() => {})
      await this._evaluate()
      if (runInit && typeof this.exports.init === 'function') {
        // Counted ahead until its entry is queued, so that calls sent meanwhile get their entry index right.
        const fx = { counted: true }
        this._ahead++
        const init = await this._execute('init', [], undefined, null, undefined, undefined, undefined, fx)
          .finally(() => { if (fx.counted) { fx.counted = false; this._ahead-- } })
        init.durable.catch(() => {})
      }
    }
  }

  async _execute (methodName, args, userId, early = null, extra = undefined, commit = undefined, givenJSON = undefined, fx = {}) {
    if (!this.callLog) throw new ClosedError('VM is closed')
    // A commit made elsewhere (Rust, for an RPC call) that failed stops the VM as a failed commit of ours does.
    const failed = this.callLog._failure()
    if (failed) this._stop(failed)
    if (this._stopped) throw this._stopped
    if (givenJSON === undefined && !Array.isArray(args)) throw new BadArgumentError('args must be an array')
    // The log keeps the arguments as they were passed, and the method sees exactly what a replay will see: that
    // text parsed (in the sandbox).
    const argsJSON = early ? early.argsJSON : givenJSON !== undefined ? givenJSON : toJSONText(args, 'call arguments')
    let res
    let err
    let threw = false
    let stopped
    let text // the result's JSON text as the script's realm wrote it
    let effects = {}
    try {
      // The method runs in the script's sandbox, which gets the arguments as the log's text.
      const invoked = await this._invoke(methodName, argsJSON, userId, early && early.outcome, fx)
      threw = invoked.threw
      if (threw) err = invoked.value
      else res = invoked.value
      stopped = invoked.stopped
      text = invoked.resJSON
      effects = invoked
    } catch (e) {
      threw = true
      err = e
    }
    // A replayed call that used the outside world otherwise than the log says: the replay stops here.
    if (fx.recorded && stopped === undefined) checkReplayed(fx, effects)
    // A write the disk refused (full, failing) is not the call's outcome: the call leaves no entry, and the VM stops.
    const failure = this.filesArchive._storageFailure()
    if (failure) {
      this._stop(failure)
      throw failure
    }
    const entry = { userId, methodName, filesVersion: this.filesArchive.version, err: undefined }
    // The host's word that a limit stopped this call; a replay copies it instead of re-running the call.
    if (stopped !== undefined) entry.stopped = stopped
    // A signed call's signature members (crates/auth `entry_fields`: `auth`), kept beside the call.
    if (extra) Object.assign(entry, extra)
    // What the call read from outside (README, Oracles): its time, if it read the clock, and its oracle uses. A
    // call that did neither keeps the entry it always had. `seed`: only if the call ran under another index than
    // its entry's (a call queued behind one that failed before logging), so a replay seeds it alike.
    if (effects.time !== undefined) {
      entry.time = effects.time
      this._lastTime = effects.time
    }
    if (this.deterministic && !this._replaying && stopped === undefined && fx.index !== undefined && fx.index !== this.callLog._nextIndex) entry.seed = fx.index
    if (this._replaying && fx.index !== fx.entry) entry.seed = fx.index
    // A replay that was served every record of its entry writes them as the log holds them (lib/replay-entries.js).
    const served = !commit && this._replaying && fx.recorded !== undefined && effects.oracles === fx.recorded
    if (effects.oracles && effects.oracles.length && !served) entry.oracles = effects.oracles
    let resJSON
    try {
      if (threw) entry.err = err == null ? String(err) : err
      else resJSON = text !== undefined ? text : toJSONText(res, 'call result')
    } catch (e) {
      // The result cannot be logged: the caller gets the encoding error, and so does the log (faithfully).
      threw = true
      err = e
      entry.err = e
    }
    const value = threw ? err : res
    if (commit) {
      // The caller builds this entry from the arguments it holds and commits it (crates/calllog entry.rs): only
      // the outcome crosses. Entries this VM queued before it go first.
      const { errJSON, extraJSON } = CallLog.entryParts(entry)
      this.callLog._sendQueued()
      commit(entry.filesVersion, resJSON, errJSON, extraJSON)
      this.callLog._countEntry()
      if (fx.counted) { fx.counted = false; this._ahead-- } // its entry is queued: no longer ahead
      return { durable: null, threw, value, resJSON }
    }
    const durable = served ? enqueueReplayed(this.callLog, entry, argsJSON, resJSON, fx.recorded) : this.callLog.enqueueCallJSON(entry, argsJSON, resJSON)
    if (fx.counted) { fx.counted = false; this._ahead-- } // its entry is queued: no longer ahead
    durable.catch((e) => { if (e.code !== 'CLOSED') this._stop(e) })
    return { durable, threw, value, resJSON }
  }

  async _close () {
    await this._queue.drain()
    if (this._sandbox) this._sandbox.close()
    const { filesArchive, callLog } = this
    this.filesArchive = null
    this.callLog = null
    if (filesArchive) await filesArchive.close()
    if (callLog) await callLog.close()
    if (this._tmpDir) fs.rmSync(this._tmpDir, { recursive: true, force: true })
    this.emit('close')
  }
}

/**
 * Throws a VerificationError if a replayed call's uses of the outside world differ from its entry's: `index` (the
 * entry), `use` (the oracle use's position; absent for the clock), `recorded` and `asked`.
 */
function checkReplayed (fx, effects) {
  const at = `entry ${fx.entry}`
  const d = effects.divergence
  if (d && d.invalid !== undefined) throw recordsNotJSON(fx, d.invalid)
  if (d) {
    throw new VerificationError(`${at}, oracle use ${d.use}: the log recorded ${oracles.describe(d.recorded)}, the replay asked for ${oracles.describe(d.asked)}`,
      { index: fx.entry, use: d.use, recorded: d.recorded, asked: d.asked })
  }
  const used = effects.oracles ? effects.oracles.length : 0
  let recorded
  try {
    recorded = fx.recorded.length
  } catch (e) {
    throw recordsNotJSON(fx, e.message)
  }
  if (used < recorded) {
    const rec = fx.recorded.list[used]
    throw new VerificationError(`${at}, oracle use ${used}: the log recorded ${oracles.describe(rec)}, the replay asked for nothing`,
      { index: fx.entry, use: used, recorded: rec, asked: undefined })
  }
  const logged = fx.time === 'none' ? undefined : fx.time
  if ((logged === undefined) !== (effects.time === undefined)) {
    throw new VerificationError(logged === undefined
      ? `${at}: the replay read the clock, the host's call did not`
      : `${at}: the host's call read the clock (time ${JSON.stringify(logged)}), the replay did not`,
    { index: fx.entry, recorded: logged, asked: effects.time })
  }
}

/** The entry's records are not JSON (read as text, see lib/replay-entries.js): what reading it whole would say. */
function recordsNotJSON (fx, message) {
  const e = new EncodingError(`entry ${fx.entry} is not JSON: ${message}`, { index: fx.entry })
  e.replayed = true // a replay failure (see _replayEntry)
  return e
}

/** `Name: message` of whatever a script threw. */
function errorText (e) {
  if (e instanceof Error || (e && typeof e.message === 'string')) return `${e.name || 'Error'}: ${e.message}`
  return String(e)
}

/**
 * The host-side view of a script's exports (`vm.exports`): its keys in order; a function export is a logged call
 * (`executeCall`), anything else a JSON copy of its value at evaluation. The script's own objects stay in its realm.
 */
function hostExports (vm, info) {
  const out = {}
  for (const [key, isFunction, json] of info) {
    out[key] = isFunction ? (...args) => vm.executeCall({ methodName: key, args }) : (json === null ? undefined : JSON.parse(json))
  }
  return out
}

/**
 * Appends a replay did not wait for: a count, not a chain of promises, so memory stays flat however long the log.
 * `settled()` waits for the last and rethrows the first failure; `room()` holds a replay that runs ahead of the disk.
 */
class PendingWrites {
  constructor (highWater = 8192) {
    this._count = 0
    this._error = null
    this._highWater = highWater
    this._waiters = []
  }

  track (durable) {
    this._count++
    durable.then(() => this._done(), (e) => {
      if (!this._error) this._error = e
      this._done()
    })
  }

  _done () {
    this._count--
    if (this._waiters.length === 0) return
    const ready = this._waiters.filter((w) => this._count <= w.below)
    this._waiters = this._waiters.filter((w) => this._count > w.below)
    for (const w of ready) w.resolve()
  }

  _below (n) {
    if (this._count <= n) return null
    return new Promise((resolve) => this._waiters.push({ below: n, resolve }))
  }

  room () {
    return this._below(this._highWater)
  }

  async settled () {
    await this._below(0)
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
