'use strict'
// A VM script's sandbox, seen from the main thread: one worker thread per VM holds the script's hardened `node:vm`
// context (see worker.js, bootstrap.js), under `resourceLimits` and a per-call watchdog. Only data crosses: a call
// goes in as (method, args JSON text, caller id) and comes back as result JSON text or an error's name and
// message. System.files and addAPI members run here, on the main thread, asked for with data and answered with data.
// An addAPI member is an oracle: each use is recorded, in order, for the call that made it (lib/sandbox/oracles.js);
// a replayed call is served its recorded uses instead, and the host method never runs.
const { EventEmitter } = require('node:events')
const path = require('node:path')
const { Worker } = require('node:worker_threads')

const { decodeArgs, encodeResult, errorFields } = require('./wire')
const { BadArgumentError, ClosedError, LimitError } = require('../errors')
const oracles = require('./oracles')

// The archive methods scripts may use, and nothing else (SPEC: System.files).
const FILES_METHODS = ['getInfo', 'stat', 'readFile', 'readdir', 'writeFile', 'mkdir', 'unlink', 'rmdir', 'history']
// Those that change the archive: refused outside a call, so only logged calls change state.
const FILES_WRITES = new Set(['writeFile', 'mkdir', 'unlink', 'rmdir'])
const WORKER = path.join(__dirname, 'worker.js')
const EXIT_MEMORY = 86 // worker.js: the script's array buffers went past memoryMb

/** Documented defaults; `limits` given to a VM override them field by field. */
const DEFAULT_LIMITS = Object.freeze({ callTimeoutMs: 10000, memoryMb: 256 })

/** Stop reasons, as the log records them (`stopped`): the limit's name. */
const STOPPED_TIME = 'callTimeoutMs'
const STOPPED_MEMORY = 'memoryMb'
const STOPPED_CRASH = 'crash'

class Sandbox extends EventEmitter {
  /**
   * @param {object} o code, filename, limits, `files()` (the archive, read at each request), `apis` (Map of
   *   addAPI members), `clock` (deterministic mode, see bootstrap.js: `{seedKey, seedIndex, time}`; absent: off).
   */
  constructor ({ code, filename = 'vm-script.js', limits, files, apis, clock }) {
    super()
    this.code = code
    this.clock = clock
    this.filename = filename
    this.limits = limits
    this._files = files
    this._apis = apis
    this._worker = null
    // Calls sent and not yet answered, oldest first ({seq, resolve}; seq 0 is the start). The worker runs them one
    // at a time in this order; the watchdog times the oldest, from when the worker could start it.
    this._inflight = []
    this._head = 0 // this._inflight[this._head] is the oldest (an index, so a long queue is not shifted per call)
    this._watchdog = null
    this._headSince = 0
    this._requests = new Set() // System.files/addAPI requests under way (a stop waits for them)
    this._outbox = [] // calls sent together: one message per turn of the event loop
    this._seq = 0
    this.deferFlush = false
    this._timers = false // the script has timers pending: like host timers, they keep the process alive
    this.alive = false
  }

  /**
   * Start a fresh worker and evaluate the script in it. Resolves with the script's exports as
   * `[[key, isFunction, valueJSON|null], ...]`; rejects with the evaluation's error (or a limit's).
   */
  start () {
    this._stopWorker()
    const names = {}
    for (const [name, methods] of this._apis) names[name] = Object.keys(methods || {}).filter((k) => typeof methods[k] === 'function')
    const options = { files: FILES_METHODS, apis: names, test: process.env.NODE_ENV === 'test', memoryBytes: this.limits.memoryMb * 1024 * 1024 }
    if (this.clock) Object.assign(options, { deterministic: true, seedKey: this.clock.seedKey, seedIndex: this.clock.seedIndex, clock: this.clock.time })
    this._started = new Int32Array(new SharedArrayBuffer(4)) // the seq of the call the worker started last
    const worker = new Worker(WORKER, {
      workerData: { code: this.code, filename: this.filename, options, started: this._started.buffer },
      resourceLimits: { maxOldGenerationSizeMb: this.limits.memoryMb, maxYoungGenerationSizeMb: Math.min(16, this.limits.memoryMb), stackSizeMb: 4 },
      stdout: false,
      stderr: false
    })
    this._worker = worker
    this.alive = true
    worker.on('message', (m) => this._onMessage(worker, m))
    worker.on('error', (e) => this._onExit(worker, e && e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? STOPPED_MEMORY : STOPPED_CRASH))
    worker.on('exit', (code) => this._onExit(worker, code === EXIT_MEMORY ? STOPPED_MEMORY : STOPPED_CRASH))
    return new Promise((resolve, reject) => {
      this._track(0, (outcome) => {
        if (outcome.kind === 'ready') resolve(JSON.parse(outcome.text))
        else reject(outcome.kind === 'limit' ? limitError(outcome.stopped, this.limits) : rebuildError(outcome.name, outcome.message, outcome.line))
      })
    })
  }

  /**
   * Run `method` with `argsJSON`: resolves with `{kind: 'value', text}`, `{kind: 'error', log, name, message}`,
   * `{kind: 'thrown', log, text}`, `{kind: 'encoding', message}` or `{kind: 'limit', stopped}` (the worker is gone
   * then; `start()` again) or `{kind: 'lost'}` (sent behind a call that was stopped: never run; send it again).
   * Calls may be sent before the previous one has answered: they run one at a time, in the order sent.
   * `fx`: `{index, time, recorded}`: the call's log entry index (seeds Math.random), and for a replay the logged
   * time (or 'none') and oracle records (oracles.js `Recorded`: their text goes to the worker as it is). Every
   * outcome also has `oracles` (the call's uses, in order), `time` (the clock it read) and, for a replay that asked
   * for something else, `divergence`.
   */
  call (method, argsJSON, callerId, fx = {}) {
    if (!this.alive) return Promise.reject(new ClosedError('the VM script is not running'))
    const seq = ++this._seq
    const callerJSON = callerId === undefined ? undefined : JSON.stringify(callerId)
    return new Promise((resolve) => {
      this._track(seq, resolve, fx.recorded)
      // Calls sent together share a message: those of one synchronous run (an RPC batch), or with `deferFlush`
      // (a replay, which yields between entries) those of one turn of the event loop.
      const recorded = fx.recorded === undefined ? undefined : fx.recorded.rawJSON
      if (this._outbox.push(seq, method, argsJSON, callerJSON, fx.index, fx.time, recorded) === 7) {
        if (this.deferFlush) setImmediate(() => this._flush())
        else queueMicrotask(() => this._flush())
      }
    })
  }

  _flush () {
    const calls = this._outbox
    this._outbox = []
    if (this._worker && calls.length) this._worker.postMessage(['calls', calls])
  }

  /** Stop the worker (and its timers). */
  close () {
    this._stopWorker()
  }

  /** Stop the running call, if any, as a limit does (`stopped` = `reason`); the worker goes with it. */
  stop (reason) {
    if (this._head >= this._inflight.length) return
    if (this._headReturned()) setImmediate(() => this.stop(reason)) // its answer first: it is not the one running
    else {
      this._stopWorker(reason)
      this.emit('stopped', reason)
    }
  }

  /**
   * Whether the oldest call has returned though its answer is not in yet: the worker started a later one, and
   * sends answers before it starts a call, so the answer arrives in this turn of the event loop or the next.
   */
  _headReturned () {
    return this._worker !== null && Atomics.load(this._started, 0) > this._inflight[this._head].seq
  }

  _track (seq, resolve, recorded) {
    const c = { seq, resolve, versionBefore: undefined, uses: [], recorded, divergence: undefined, tail: null }
    if (this._inflight.push(c) - this._head === 1) {
      // The start is timed from when the script itself begins to run (booting a worker is not the script's time).
      if (seq !== 0) this._arm()
      this._holdOpen()
    }
  }

  // The oldest call's clock starts now. One timer serves call after call: it is only re-set when it fires early.
  _arm () {
    this._headSince = performance.now()
    if (!this._watchdog) this._watchdog = setTimeout(() => this._check(), this.limits.callTimeoutMs)
  }

  _check () {
    this._watchdog = null
    if (this._head >= this._inflight.length || !this._worker) return
    // Not the call to stop: the next is timed from when this one's answer is in (`_end` re-arms).
    if (this._headReturned()) {
      this._watchdog = setTimeout(() => this._check(), 1)
      return
    }
    const left = this._headSince + this.limits.callTimeoutMs - performance.now()
    if (left <= 0) this._stopWorker(STOPPED_TIME)
    else this._watchdog = setTimeout(() => this._check(), Math.ceil(left))
  }

  _disarm () {
    clearTimeout(this._watchdog)
    this._watchdog = null
  }

  // A running call or pending script timers keep the process alive; an idle VM does not.
  _holdOpen () {
    if (!this._worker) return
    if (this._inflight.length > this._head || this._timers) this._worker.ref()
    else this._worker.unref()
  }

  /** The oldest call answered: the watchdog moves on to the next. */
  _end (seq, outcome) {
    const c = this._inflight[this._head]
    if (!c || c.seq !== seq) return
    this._inflight[this._head++] = undefined
    if (this._head < this._inflight.length) this._arm()
    else {
      this._disarm()
      this._inflight = []
      this._head = 0
      this._holdOpen()
    }
    if (c.recorded) oracles.replayed(c, outcome.replayed)
    outcome.oracles = c.uses
    if (c.divergence) outcome.divergence = c.divergence
    // The entry holds every use the call made: one still running is waited for (a replay serves them at once).
    if (c.tail) c.tail.then(() => c.resolve(outcome))
    else c.resolve(outcome)
  }

  _stopWorker (stopped = STOPPED_CRASH) {
    const worker = this._worker
    if (!worker) return
    this._worker = null
    this.alive = false
    worker.terminate().catch(() => {})
    this._disarm()
    const [head, ...rest] = this._inflight.slice(this._head)
    this._inflight = []
    this._head = 0
    this._outbox = []
    // The stopped call's archive writes under way finish before the caller sees the stop (and discards them).
    const settled = Promise.allSettled([...this._requests]).then(() => {})
    if (head) head.resolve({ kind: 'limit', stopped, versionBefore: head.versionBefore, settled, oracles: head.uses })
    for (const c of rest) c.resolve({ kind: 'lost' })
  }

  _onExit (worker, stopped) {
    if (worker !== this._worker) return
    this._stopWorker(stopped)
    this.emit('stopped', stopped)
  }

  _onMessage (worker, m) {
    if (worker !== this._worker) return
    const kind = m[0]
    if (kind === 'done') {
      // Answers, in the order the calls ran: [seq, how, a, b] each.
      const d = m[1]
      for (let i = 0; i < d.length; i += 6) this._done(d[i], d[i + 1], d[i + 2], d[i + 3], d[i + 4], d[i + 5])
    } else if (kind === 'request') {
      if (m[2] === 'files') this._request(worker, m[1], m[2], m[3], m[4])
      else oracles.use(this, worker, m[1], m[2], m[3], m[4], m[5])
    }
    else if (kind === 'console') writeConsole(m[1], m[2])
    else if (kind === 'timers') {
      this._timers = m[1] === true
      this._holdOpen()
    }
    else if (kind === 'fault') {
      const e = rebuildError(m[2], m[3])
      e.where = m[1]
      this.emit('fault', e)
    } else if (kind === 'evaluating') this._arm()
    else if (kind === 'ready') this._end(0, { kind: 'ready', text: m[1] })
    else if (kind === 'failed') this._end(0, { kind: 'failed', name: m[1], message: m[2], line: m[3] })
  }

  _done (seq, how, a, b, time, replayed) {
    if (how === 'value') this._end(seq, { kind: 'value', text: a, time, replayed })
    else if (how === 'encoding') this._end(seq, { kind: 'encoding', message: a, time, replayed })
    else if (how === 'error') {
      const [name, message, line] = JSON.parse(b)
      this._end(seq, { kind: 'error', log: a, name, message, line, time, replayed })
    } else this._end(seq, { kind: 'thrown', log: a, text: b, time, replayed })
  }

  async _request (worker, id, api, method, argsText) {
    let reply
    let running
    try {
      running = this._perform(api, method, decodeArgs(argsText))
      this._requests.add(running)
      const value = await running
      reply = ['reply', id, 'ok', encodeResult(value)]
    } catch (e) {
      reply = ['reply', id, 'err', JSON.stringify(errorFields(e))]
    }
    this._requests.delete(running)
    if (worker === this._worker) worker.postMessage(reply)
  }

  async _perform (api, method, args) {
    if (api === 'files') {
      if (!FILES_METHODS.includes(method)) throw new TypeError(`System.files.${method} is not a function`)
      const head = this._inflight[this._head]
      if (FILES_WRITES.has(method) && !head) throw new Error(`System.files.${method} is only allowed during a call`)
      const archive = this._files()
      if (!archive) throw new ClosedError('VM is closed')
      // Where a stopped call's writes would be discarded back to (read once per call, at its first write).
      if (FILES_WRITES.has(method) && head.versionBefore === undefined) head.versionBefore = archive.version
      return archive[method](...args)
    }
    const methods = this._apis.get(api)
    if (!methods || !Object.hasOwn(methods, method) || typeof methods[method] !== 'function') throw new TypeError(`System.${api}.${method} is not a function`)
    return methods[method](...args)
  }
}

const STANDARD = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError }

/** A host error with the script error's name and message (the script's own object never leaves its realm). */
function rebuildError (name, message, line) {
  const C = Object.hasOwn(STANDARD, name) ? STANDARD[name] : Error
  const e = new C(message)
  if (C === Error && name !== 'Error') Object.defineProperty(e, 'name', { value: name, configurable: true, writable: true })
  // Where the script threw, as a stack frame of its own file (the CLI names the line).
  if (Number.isSafeInteger(line)) e.stack = `${name}: ${message}\n    at vm-script.js:${line}`
  return e
}

function writeConsole (level, line) {
  if (typeof line !== 'string') return
  const out = level === 'warn' || level === 'error' ? process.stderr : process.stdout
  out.write(line + '\n')
}

/** `limits` over the defaults, checked: positive integers. */
function resolveLimits (limits) {
  if (limits !== undefined && (limits === null || typeof limits !== 'object')) throw new BadArgumentError('limits must be an object')
  const l = { ...DEFAULT_LIMITS }
  for (const k of Object.keys(DEFAULT_LIMITS)) {
    const v = limits && limits[k]
    if (v === undefined) continue
    if (!Number.isSafeInteger(v) || v <= 0) throw new BadArgumentError(`limits.${k} must be a positive integer`)
    l[k] = v
  }
  return l
}

/** The caller's error for a stopped call; `stopped` names the limit. */
function limitError (stopped, limits) {
  const what = {
    [STOPPED_TIME]: `ran longer than callTimeoutMs (${limits.callTimeoutMs} ms)`,
    [STOPPED_MEMORY]: `used more than memoryMb (${limits.memoryMb} MB)`,
    shutdown: 'was still running when the host shut down'
  }
  return new LimitError(`the VM script was stopped: it ${what[stopped] || 'crashed'}`, { stopped })
}

module.exports = { Sandbox, FILES_METHODS, DEFAULT_LIMITS, resolveLimits, rebuildError, limitError }
