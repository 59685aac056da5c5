// Evaluated INSIDE each VM's context (never required by Node), before the VM script. Its completion value is a
// setup function the worker calls once with `post` (the only host function the context ever holds, kept in this
// closure) and the options as JSON text. It builds every global a script sees (one place, deterministic
// Math.random and Date included) and returns `control`, through which the worker passes data in.
// Everything crossing the boundary either way is a primitive: strings (JSON text), numbers, booleans.
// Intrinsics are captured before the script runs, so a script that patches them only harms itself.
(function setup (post, optionsText) {
  'use strict'
  const g = globalThis
  const { parse, stringify } = JSON
  const { create, defineProperty, freeze, keys, hasOwn } = Object
  const { apply, construct } = Reflect
  const { max } = Math
  const NumberC = Number
  const PromiseC = Promise
  const ErrorC = Error
  const TypeErrorC = TypeError
  const Uint8ArrayC = Uint8Array // the original: views over existing bytes only
  const ArrayBufferC = ArrayBuffer
  const isView = ArrayBuffer.isView
  const fromCharCode = String.fromCharCode
  const charCodeAt = String.prototype.charCodeAt
  // String methods called as functions (`startsWithU(s, x, at)`): bound now, so a script that patches them (or
  // Function.prototype.call) only harms itself.
  const uncurry = (f) => apply(Function.prototype.bind, Function.prototype.call, [f])
  const startsWithU = uncurry(String.prototype.startsWith)
  const sliceU = uncurry(String.prototype.slice)
  const charCodeAtU = uncurry(String.prototype.charCodeAt)
  const arrayFrom = Array.from
  const mathRandom = Math.random
  const ERRORS = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError }
  const options = parse(optionsText)

  // --- memory outside the JS heap: the worker's resourceLimits cap the heap only, so array buffers (whose bytes
  // live outside it) are counted here, against the same memoryMb. Going past it stops the call like a heap
  // overflow does. Every route to the original constructors is replaced by a counting one.
  const bufferBudget = options.memoryBytes
  let bufferBytes = 0
  const uncount = new FinalizationRegistry((n) => { bufferBytes -= n })
  const bufferOfView = apply.bind(null, Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), 'buffer').get)
  const byteLengthOf = apply.bind(null, Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength').get)
  function count (bytes) {
    if (!(bytes <= bufferBudget - bufferBytes)) {
      post('limit', 'memoryMb')
      throw new RangeError('Array buffer allocation failed') // not reached: the worker stops on the line above
    }
  }
  function counting (Original, bytesPerElement) {
    const C = new Proxy(Original, {
      construct (target, args, newTarget) {
        const a = args[0]
        const shared = a instanceof Original || isOriginalBuffer(a)
        // Read once: a getter must not answer differently to the count and to the constructor.
        const maxLength = bytesPerElement === 0 && args[1] !== null && typeof args[1] === 'object' ? NumberC(args[1].maxByteLength) || 0 : 0
        if (maxLength) args = [a, { maxByteLength: maxLength }]
        if (!shared) {
          // Refuse a large request before it is made; count what was actually made after.
          if (bytesPerElement === 0) count(max(NumberC(a) || 0, maxLength))
          else if (typeof a !== 'object' || a === null) count((NumberC(a) || 0) * bytesPerElement)
        }
        const made = construct(target, args, newTarget)
        if (!shared) {
          const buffer = bytesPerElement === 0 ? made : bufferOfView(made, [])
          const n = bytesPerElement === 0 ? max(byteLengthOf(made, []), maxLength) : byteLengthOf(buffer, [])
          if (bytesPerElement !== 0 && typeof a === 'object' && a !== null) count(n)
          bufferBytes += n
          uncount.register(buffer, n)
        }
        return made
      }
    })
    defineProperty(Original.prototype, 'constructor', { value: C, writable: true, configurable: true, enumerable: false })
    defineProperty(g, Original.name, { value: C, writable: true, configurable: true, enumerable: false })
    return C
  }
  const ArrayBufferOriginal = ArrayBuffer
  function isOriginalBuffer (a) { return a instanceof ArrayBufferOriginal }
  counting(ArrayBuffer, 0)
  for (const T of [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array]) counting(T, T.BYTES_PER_ELEMENT)
  // Shared memory and WebAssembly (its code generation is off anyway) would be uncounted memory: not offered.
  delete g.SharedArrayBuffer
  delete g.WebAssembly
  const BYTES = '\u0000bytes' // marks a top-level argument or result that is bytes (a latin1 string)

  // Every call into the host goes through here: a host error (even a stack overflow on entry) never reaches the
  // script, only this realm's Error.
  function send (kind, a, b, c, d, e, f) {
    try {
      post(kind, a, b, c, d, e, f)
    } catch (_) {
      throw new ErrorC('the host channel refused a message')
    }
  }

  // --- Buffer: a compact Node-like Buffer made in this realm (utf8, hex, base64, latin1/binary, ascii) ---
  function utf8Encode (s) {
    const out = []
    for (let i = 0; i < s.length; i++) {
      let c = apply(charCodeAt, s, [i])
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
        const d = apply(charCodeAt, s, [i + 1])
        if (d >= 0xdc00 && d <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++ } else c = 0xfffd
      } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd
      if (c < 0x80) out[out.length] = c
      else if (c < 0x800) { out[out.length] = 0xc0 | (c >> 6); out[out.length] = 0x80 | (c & 63) } else if (c < 0x10000) {
        out[out.length] = 0xe0 | (c >> 12); out[out.length] = 0x80 | ((c >> 6) & 63); out[out.length] = 0x80 | (c & 63)
      } else {
        out[out.length] = 0xf0 | (c >> 18); out[out.length] = 0x80 | ((c >> 12) & 63)
        out[out.length] = 0x80 | ((c >> 6) & 63); out[out.length] = 0x80 | (c & 63)
      }
    }
    return out
  }
  function utf8Decode (b, start, end) {
    let s = ''
    let chunk = []
    for (let i = start; i < end;) {
      const c = b[i]
      let cp = 0xfffd
      let n = 1
      if (c < 0x80) cp = c
      else if (c >= 0xc2 && c < 0xe0 && i + 1 < end && (b[i + 1] & 0xc0) === 0x80) { cp = ((c & 31) << 6) | (b[i + 1] & 63); n = 2 } else if (c >= 0xe0 && c < 0xf0 && i + 2 < end && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80) {
        cp = ((c & 15) << 12) | ((b[i + 1] & 63) << 6) | (b[i + 2] & 63); n = 3
        if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)) { cp = 0xfffd; n = 1 }
      } else if (c >= 0xf0 && c < 0xf5 && i + 3 < end && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80 && (b[i + 3] & 0xc0) === 0x80) {
        cp = ((c & 7) << 18) | ((b[i + 1] & 63) << 12) | ((b[i + 2] & 63) << 6) | (b[i + 3] & 63); n = 4
        if (cp < 0x10000 || cp > 0x10ffff) { cp = 0xfffd; n = 1 }
      }
      if (cp >= 0x10000) { cp -= 0x10000; chunk[chunk.length] = 0xd800 + (cp >> 10); chunk[chunk.length] = 0xdc00 + (cp & 1023) } else chunk[chunk.length] = cp
      if (chunk.length > 4096) { s += apply(fromCharCode, null, chunk); chunk = [] }
      i += n
    }
    return s + apply(fromCharCode, null, chunk)
  }
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  const B64_INDEX = create(null)
  for (let i = 0; i < 64; i++) B64_INDEX[B64[i]] = i
  B64_INDEX['-'] = 62
  B64_INDEX._ = 63
  function latin1 (b, start, end, mask) {
    let s = ''
    for (let i = start; i < end; i += 4096) {
      const part = []
      for (let j = i; j < end && j < i + 4096; j++) part[part.length] = b[j] & mask
      s += apply(fromCharCode, null, part)
    }
    return s
  }
  function encodeBytes (s, enc) {
    const out = []
    if (enc === 'hex') {
      for (let i = 0; i + 1 < s.length; i += 2) {
        const v = parseInt(s[i] + s[i + 1], 16)
        if (v !== v) break // eslint-disable-line no-self-compare
        out[out.length] = v
      }
    } else if (enc === 'base64' || enc === 'base64url') {
      let bits = 0
      let acc = 0
      for (let i = 0; i < s.length; i++) {
        const v = B64_INDEX[s[i]]
        if (v === undefined) continue
        acc = (acc << 6) | v
        bits += 6
        if (bits >= 8) { bits -= 8; out[out.length] = (acc >> bits) & 255 }
      }
    } else if (enc === 'latin1' || enc === 'binary' || enc === 'ascii') {
      for (let i = 0; i < s.length; i++) out[out.length] = apply(charCodeAt, s, [i]) & 255
    } else if (enc === 'utf8' || enc === 'utf-8') return utf8Encode(s)
    else throw new TypeErrorC('Unknown encoding: ' + enc)
    return out
  }
  function normEnc (enc) { return enc === undefined ? 'utf8' : String(enc).toLowerCase() }

  class Buffer extends g.Uint8Array { // the counting constructor
    static from (value, encOrOffset, length) {
      if (typeof value === 'string') return bufferOf(encodeBytes(value, normEnc(encOrOffset)))
      if (value instanceof ArrayBufferC) return new Buffer(value, encOrOffset, length)
      if (value && value.type === 'Buffer' && Array.isArray(value.data)) return bufferOf(value.data)
      if (value != null && typeof value.length === 'number') return bufferOf(value)
      throw new TypeErrorC('The first argument must be a string, Buffer, ArrayBuffer, Array, or array-like object')
    }

    static alloc (size, fill) {
      const b = new Buffer(size)
      if (fill !== undefined) b.fill(typeof fill === 'string' ? (encodeBytes(fill, 'utf8')[0] || 0) : fill)
      return b
    }

    static allocUnsafe (size) { return new Buffer(size) }
    static isBuffer (b) { return b instanceof Buffer }
    static isEncoding (enc) { return ['utf8', 'utf-8', 'hex', 'base64', 'base64url', 'latin1', 'binary', 'ascii'].includes(normEnc(enc)) }
    static byteLength (v, enc) { return typeof v === 'string' ? encodeBytes(v, normEnc(enc)).length : v.byteLength }
    static concat (list, total) {
      let n = 0
      for (const b of list) n += b.length
      const out = new Buffer(total === undefined ? n : total)
      let at = 0
      for (const b of list) { if (at >= out.length) break; out.set(b.length + at > out.length ? b.subarray(0, out.length - at) : b, at); at += b.length }
      return out
    }

    static compare (a, b) { return a.compare(b) }

    toString (enc, start = 0, end = this.length) {
      const e = normEnc(enc)
      start = Math.max(0, start | 0)
      end = Math.min(this.length, end | 0)
      if (end <= start) return ''
      if (e === 'utf8' || e === 'utf-8') return utf8Decode(this, start, end)
      if (e === 'latin1' || e === 'binary') return latin1(this, start, end, 255)
      if (e === 'ascii') return latin1(this, start, end, 127)
      if (e === 'hex') { let s = ''; for (let i = start; i < end; i++) s += (this[i] < 16 ? '0' : '') + this[i].toString(16); return s }
      if (e === 'base64' || e === 'base64url') {
        const url = e === 'base64url'
        const abc = url ? B64.slice(0, 62) + '-_' : B64
        let s = ''
        for (let i = start; i < end; i += 3) {
          const n = (this[i] << 16) | ((i + 1 < end ? this[i + 1] : 0) << 8) | (i + 2 < end ? this[i + 2] : 0)
          s += abc[(n >> 18) & 63] + abc[(n >> 12) & 63]
          s += i + 1 < end ? abc[(n >> 6) & 63] : (url ? '' : '=')
          s += i + 2 < end ? abc[n & 63] : (url ? '' : '=')
        }
        return s
      }
      throw new TypeErrorC('Unknown encoding: ' + enc)
    }

    toJSON () { return { type: 'Buffer', data: arrayFrom(this) } }
    equals (other) { return this.compare(other) === 0 }
    compare (other) {
      const n = Math.min(this.length, other.length)
      for (let i = 0; i < n; i++) if (this[i] !== other[i]) return this[i] < other[i] ? -1 : 1
      return this.length === other.length ? 0 : (this.length < other.length ? -1 : 1)
    }

    slice (start, end) { return this.subarray(start, end) }
    write (string, offset = 0, enc) {
      const bytes = encodeBytes(string, normEnc(enc))
      const n = Math.min(bytes.length, this.length - offset)
      for (let i = 0; i < n; i++) this[offset + i] = bytes[i]
      return n
    }
  }
  function bufferOf (bytes) {
    const b = new Buffer(bytes.length)
    for (let i = 0; i < bytes.length; i++) b[i] = bytes[i]
    return b
  }

  // --- data across the boundary ---
  // Arguments to the host: JSON text; a top-level Uint8Array/ArrayBuffer travels as a latin1 string.
  function encodeArgs (args) {
    let out = args // `args` is the stub's own rest array: copied only when an argument is bytes
    for (let i = 0; i < args.length; i++) {
      let a = args[i]
      if (a instanceof ArrayBufferC) a = new Uint8ArrayC(a)
      if (isView(a)) {
        if (out === args) {
          out = []
          for (let j = 0; j < i; j++) out[j] = args[j]
        }
        const bytes = new Uint8ArrayC(a.buffer, a.byteOffset, a.byteLength)
        out[i] = { [BYTES]: latin1(bytes, 0, bytes.length, 255) }
      } else if (out !== args) out[i] = a
    }
    const text = stringify(out)
    if (typeof text !== 'string') throw new TypeErrorC('arguments must be JSON data')
    return text
  }
  function decodeValue (text) {
    if (text === undefined) return undefined
    const v = parse(text)
    if (v !== null && typeof v === 'object' && hasOwn(v, BYTES)) return Buffer.from(v[BYTES], 'latin1')
    return v
  }
  function makeError (name, message, code) {
    const C = hasOwn(ERRORS, name) ? ERRORS[name] : ErrorC
    const e = new C(message)
    if (C === ErrorC && name !== 'Error') e.name = name
    if (code !== undefined) e.code = code
    return e
  }
  // The script's line an error was thrown at (its first stack frame in the script), so the host can say where.
  function scriptLine (e) {
    try {
      const m = /vm-script\.js:(\d+)/.exec(String(e.stack))
      return m ? Number(m[1]) : null
    } catch (_) {
      return null
    }
  }
  // How a thrown value or rejection reads in the host's log: the error's name (else its message, else its text).
  function describe (e) {
    try {
      if (typeof e === 'string') return { log: e, text: stringify(e) }
      if (e !== null && (typeof e === 'object' || typeof e === 'function')) {
        const name = e.name
        const message = e.message
        const log = (name || message) ? String(name || message) : String(e)
        if (e instanceof ErrorC) return { log, name: String(name), message: String(message), line: scriptLine(e) }
        let text
        try { text = stringify(e) } catch (_) {}
        return { log, text: text === undefined ? 'null' : text }
      }
      return { log: String(e), text: stringify(e) } // undefined stays undefined (logged as "undefined")
    } catch (_) {
      return { log: 'Error', name: 'Error', message: 'a thrown value that cannot be described' }
    }
  }

  // --- requests to the host: System.files and addAPI members ---
  let nextRequest = 1
  const pending = create(null)
  function request (api, method, args, head) {
    const argsText = encodeArgs(args)
    // A replayed call's addAPI uses are served here, from its log entry, without a trip to the host.
    if (api !== 'files' && current !== 0 && replayText !== undefined) return served(api, method, argsText, head)
    return new PromiseC((resolve, reject) => {
      const id = nextRequest++
      pending[id] = { resolve, reject }
      // The call it belongs to (0: none): an addAPI use is recorded in that call's entry.
      send('request', id, api, method, argsText, current)
    })
  }
  function stubs (api, methods, shape) {
    const o = {}
    for (const m of methods) {
      // A plain function of this realm; `request` never lets host values through.
      const reshape = shape && shape[m]
      // How a record of this member begins, as the host writes it (a replay matches uses against it: `onlyRecord`).
      const head = '[{"api":' + stringify(api) + ',"method":' + stringify(m) + ',"args":'
      o[m] = reshape
        ? { [m] (...args) { return request(api, m, args).then(reshape) } }[m]
        : { [m] (...args) { return request(api, m, args, head) } }[m]
    }
    return o
  }
  // System.files results that are more than data (Beaker's Stat has methods and Dates), rebuilt here.
  class Stat {
    #dir
    constructor (s) {
      this.#dir = !!s._dir
      this.size = s.size
      this.blocks = s.blocks
      this.downloaded = s.downloaded
      this.mtime = new Date(s.mtime)
      this.ctime = new Date(s.ctime)
    }

    isFile () { return !this.#dir }
    isDirectory () { return this.#dir }
  }
  const FILES_SHAPE = {
    stat: (s) => new Stat(s),
    readdir: (list) => list.map((e) => (e !== null && typeof e === 'object' && e.stat) ? { name: e.name, stat: new Stat(e.stat) } : e)
  }

  // --- timers: in-realm handles; the worker keeps the real timers and fires them by id ---
  let nextTimer = 1
  const timers = create(null)
  class Timeout {
    #id
    constructor (id) { this.#id = id }
    static idOf (h) { return (h !== null && typeof h === 'object' && #id in h) ? h.#id : (typeof h === 'number' ? h : undefined) }
    ref () { return this }
    unref () { return this }
    hasRef () { return true }
    refresh () { const t = timers[this.#id]; if (t) send('timer', this.#id, t.ms, t.repeat); return this }
    [Symbol.toPrimitive] () { return this.#id }
  }
  function addTimer (cb, ms, repeat, args) {
    if (typeof cb !== 'function') throw new TypeErrorC('The "callback" argument must be of type function')
    const id = nextTimer++
    ms = ms === -1 ? -1 : Math.max(1, Number(ms) || 1)
    timers[id] = { cb, args, ms, repeat, handle: new Timeout(id) }
    send('timer', id, ms, repeat)
    return timers[id].handle
  }
  function clearTimer (h) {
    const id = Timeout.idOf(h)
    if (id === undefined || !timers[id]) return
    delete timers[id]
    send('clear', id)
  }

  // --- console: formatted here, sent as text ---
  function show (v, depth) {
    if (typeof v === 'string') return depth ? stringify(v) : v
    if (typeof v === 'function') return '[Function: ' + (v.name || 'anonymous') + ']'
    if (v instanceof ErrorC) return v.stack ? String(v.stack) : String(v)
    if (v === null || typeof v !== 'object') return String(v)
    try { return stringify(v) } catch (_) { return '[object]' }
  }
  function logger (level) {
    return function (...args) {
      let line = ''
      for (let i = 0; i < args.length; i++) line += (i ? ' ' : '') + show(args[i], 0)
      send('console', level, line)
    }
  }

  // --- deterministic mode: Math.random and Date come from the log (see README, Deterministic execution) ---
  // Math.random: sfc32, seeded per call from the log's key and the call's entry index (lazily, on first use). Date:
  // the call's time, read once per call (the host's clock, reported back and logged as `time`; a replay gets the
  // logged one). Outside a call (script load, a timer between calls) the clock reads the last call time seen.
  const DateC = Date
  const realNow = DateC.now
  let current = 0 // the running call's seq
  let clockMode // the running call's: undefined (live: read the host clock), a number (logged), 'none' (logged: unread)
  let callTime // this call's time once read
  let lastTime = typeof options.clock === 'number' ? options.clock : 0
  let seedIndex = -1
  let seeded = false
  let sa = 0
  let sb = 0
  let sc = 0
  let sd = 0
  const key = []
  for (let i = 0; i < 8; i++) key[i] = parseInt(String(options.seedKey || '').slice(i * 8, i * 8 + 8), 16) >>> 0
  function mix32 (h) {
    h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35); h ^= h >>> 16
    return h >>> 0
  }
  function sfc32 () {
    const t = (((sa + sb) | 0) + sd) | 0
    sd = (sd + 1) | 0
    sa = sb ^ (sb >>> 9)
    sb = (sc + (sc << 3)) | 0
    sc = (sc << 21) | (sc >>> 11)
    sc = (sc + t) | 0
    return t >>> 0
  }
  function seed () {
    const lo = seedIndex >>> 0
    const hi = Math.floor(seedIndex / 4294967296) >>> 0
    sa = mix32(key[0] ^ key[4] ^ lo)
    sb = mix32(key[1] ^ key[5] ^ hi ^ 0x9e3779b9)
    sc = mix32(key[2] ^ key[6] ^ lo ^ 0x7f4a7c15)
    sd = mix32(key[3] ^ key[7] ^ hi ^ 0x6a09e667)
    for (let i = 0; i < 16; i++) sfc32()
    seeded = true
  }
  function seededRandom () {
    if (!seeded) seed()
    return ((sfc32() >>> 5) * 67108864 + (sfc32() >>> 6)) / 9007199254740992
  }
  function now () {
    if (current === 0) return lastTime
    if (callTime === undefined) {
      callTime = clockMode === undefined ? realNow() : (typeof clockMode === 'number' ? clockMode : lastTime)
      lastTime = callTime
    }
    return callTime
  }
  // A replayed call's oracle records (JSON text; undefined on the host), parsed at its first use; the uses it made;
  // the first use that differed from the records (JSON text, see oracles.js `replayed`).
  let replayText
  let replayUses
  let usesMade = 0
  let divergence
  function served (api, method, argsText, head) {
    const position = usesMade
    const alone = position === 0 && divergence === undefined && replayUses === undefined ? onlyRecord(head, argsText) : undefined
    const rec = alone !== undefined ? alone : records() ? replayUses[position] : undefined
    if (divergence === undefined && rec !== null && typeof rec === 'object' && (alone !== undefined || (rec.api === api &&
        rec.method === method && stringify(rec.args) === argsText)) && (rec.error === undefined || (rec.error !== null && typeof rec.error === 'object'))) {
      usesMade++
      const e = rec.error
      if (e !== undefined) return PromiseC.reject(makeError(String(e.name), String(e.message), typeof e.code === 'string' ? e.code : undefined))
      const v = rec.value
      return PromiseC.resolve(v !== null && typeof v === 'object' && hasOwn(v, BYTES) ? Buffer.from(v[BYTES], 'latin1') : v)
    }
    if (divergence === undefined) divergence = stringify([position, api, method, argsText])
    return PromiseC.reject(makeError('VerificationError', 'replay diverged at oracle use ' + position, 'VERIFICATION_MISMATCH'))
  }
  // The usual entry: one record, for exactly this use. Its text is then `head` (the member's, see `stubs`) and the
  // use's arguments as the host wrote them, followed by ',"value":V}]', ',"error":E}]' or '}]', and only V or E is
  // parsed. When V (or E) is JSON on its own, the text is that one record (V's brackets balance, so it cannot reach
  // into a next one). Anything else: undefined, and the records are parsed whole. Compared in place: no text is
  // built or copied but V's.
  function onlyRecord (head, argsText) {
    const t = replayText
    const end = t.length - 2
    const at = head.length + argsText.length
    if (at > end || !startsWithU(t, '}]', end) || !startsWithU(t, head, 0) || !startsWithU(t, argsText, head.length)) return undefined
    let rec
    try {
      if (at === end) rec = { value: undefined, error: undefined }
      else if (startsWithU(t, ',"value":', at)) rec = { value: parseValue(t, at + 9, end), error: undefined }
      else if (startsWithU(t, ',"error":', at)) rec = { value: undefined, error: parse(sliceU(t, at + 9, end)) }
      else return undefined
    } catch (_) {
      return undefined
    }
    replayUses = [rec]
    return rec
  }
  // JSON text t[from, end) parsed. An integer of up to 15 digits (exact in a double), the usual outcome, is read
  // here without a slice and a JSON.parse, which cost more than the rest of a use.
  function parseValue (t, from, end) {
    let i = from
    const negative = i < end && charCodeAtU(t, i) === 45 // -
    if (negative) i++
    let v = 0
    if (end - i >= 1 && end - i <= 15 && !(charCodeAtU(t, i) === 48 && end - i > 1)) { // no leading zero
      for (; i < end; i++) {
        const d = charCodeAtU(t, i) - 48
        if (d < 0 || d > 9) break
        v = v * 10 + d
      }
      if (i === end) return negative ? -v : v
    }
    return parse(sliceU(t, from, end))
  }
  // The records, parsed once (the log's text as it is: a record that is not JSON stops the replay); false if not JSON.
  function records () {
    if (replayUses === undefined) {
      try {
        replayUses = replayText === '[]' ? [] : parse(replayText)
      } catch (e) {
        replayUses = null
        divergence = stringify([-1, String(e && e.message)])
      }
    }
    return replayUses !== null
  }
  // What a replayed call reports: how many records it was served if that was all of them, else where it diverged.
  function replayReport () {
    if (divergence === undefined && records() && usesMade < replayUses.length) divergence = stringify([usesMade])
    return divergence !== undefined ? divergence : usesMade
  }
  // A call starts: its own random stream and clock (and for a replay, its oracle records).
  function enterCall (seq, index, clock, recordedText) {
    current = seq
    replayText = recordedText
    replayUses = undefined
    usesMade = 0
    divergence = undefined
    clockMode = clock
    callTime = undefined
    if (typeof index === 'number' && index >= 0) {
      seedIndex = index
      seeded = false
    }
  }
  if (options.deterministic) {
    seedIndex = typeof options.seedIndex === 'number' ? options.seedIndex : 0
    const DateD = function Date (...args) {
      if (new.target === undefined) return apply(DateC.prototype.toString, construct(DateC, [now()]), [])
      return construct(DateC, args.length === 0 ? [now()] : args, new.target)
    }
    defineProperty(DateD, 'length', { value: 7 })
    defineProperty(DateD, 'prototype', { value: DateC.prototype, writable: false, enumerable: false, configurable: false })
    defineProperty(DateC.prototype, 'constructor', { value: DateD, writable: true, configurable: true, enumerable: false })
    DateD.now = function now_ () { return now() }
    defineProperty(DateD.now, 'name', { value: 'now' })
    DateD.parse = DateC.parse
    DateD.UTC = DateC.UTC
    defineProperty(g, 'Date', { value: DateD, writable: true, configurable: true, enumerable: false })
    defineProperty(Math, 'random', { value: { random () { return seededRandom() } }.random, writable: true, configurable: true, enumerable: false })
    // Intl's formatters read the clock when given no date.
    const DTF = Intl.DateTimeFormat.prototype
    const formatGet = Object.getOwnPropertyDescriptor(DTF, 'format').get
    const formatToParts = DTF.formatToParts
    defineProperty(DTF, 'format', {
      get () { const f = apply(formatGet, this, []); return (d) => f(d === undefined ? now() : d) },
      configurable: true,
      enumerable: false
    })
    DTF.formatToParts = function formatToParts_ (d) { return apply(formatToParts, this, [d === undefined ? now() : d]) }
  }

  // --- the globals a script sees: built here, in one place ---
  const System = { caller: { id: undefined }, files: stubs('files', options.files, FILES_SHAPE) }
  for (const name of keys(options.apis)) System[name] = stubs(name, options.apis[name])
  // A deliberately nondeterministic API, only for tests of verification failure.
  if (options.test) System.test = { random: () => mathRandom() }
  const module = { exports: {} }
  const globals = {
    module,
    exports: module.exports,
    System,
    Buffer,
    console: { log: logger('log'), info: logger('info'), debug: logger('debug'), warn: logger('warn'), error: logger('error'), trace: logger('error') },
    setTimeout: (cb, ms, ...args) => addTimer(cb, ms, false, args),
    setInterval: (cb, ms, ...args) => addTimer(cb, ms, true, args),
    setImmediate: (cb, ...args) => addTimer(cb, -1, false, args),
    clearTimeout: clearTimer,
    clearInterval: clearTimer,
    clearImmediate: clearTimer
  }
  for (const k of keys(globals)) defineProperty(g, k, { value: globals[k], writable: true, configurable: true, enumerable: false })

  // --- calls from the host ---
  function finish (seq, threw, value) {
    // The clock this call read, if it did: the host logs it (`time`). The call is over: later uses belong to none.
    const time = current === seq ? callTime : undefined
    // A replayed call: the uses it was served (a count), or where it diverged (text).
    const replayed = current !== seq || replayText === undefined ? undefined : replayReport()
    if (current === seq) current = 0
    if (!threw) {
      let text
      try {
        text = stringify(value)
      } catch (e) {
        // The result cannot be logged: the host reports an EncodingError, as it always did.
        send('done', seq, 'encoding', String(e && e.message), undefined, time, replayed)
        return
      }
      send('done', seq, 'value', text, undefined, time, replayed)
      return
    }
    const d = describe(value)
    if (d.name !== undefined) send('done', seq, 'error', d.log, stringify([d.name, d.message, d.line]), time, replayed)
    else send('done', seq, 'thrown', d.log, d.text, time, replayed)
  }
  function invoke (seq, method, argsText, callerText, index, clock, recordedText) {
    let res
    enterCall(seq, index, clock, recordedText)
    try {
      System.caller.id = callerText === undefined ? undefined : parse(callerText)
      const ex = module.exports
      const fn = ex !== null && (typeof ex === 'object' || typeof ex === 'function') && hasOwn(ex, method) ? ex[method] : undefined
      if (typeof fn !== 'function') throw new TypeErrorC(method + ' is not a function')
      res = apply(fn, ex, parse(argsText))
    } catch (e) {
      finish(seq, true, e)
      return
    }
    // A thenable result is adopted here, in this realm: the host never calls a script's `then`.
    if (res !== null && (typeof res === 'object' || typeof res === 'function')) {
      let then
      try { then = res.then } catch (e) { finish(seq, true, e); return }
      if (typeof then === 'function') {
        new PromiseC((resolve) => resolve(res)).then((v) => finish(seq, false, v), (e) => finish(seq, true, e))
        return
      }
    }
    finish(seq, false, res)
  }
  function exportsInfo () {
    const ex = module.exports
    const out = []
    if (ex !== null && (typeof ex === 'object' || typeof ex === 'function')) {
      for (const k of keys(ex)) {
        const v = ex[k]
        let text
        if (typeof v !== 'function') try { text = stringify(v) } catch (_) {}
        out[out.length] = [k, typeof v === 'function', text === undefined ? null : text]
      }
    }
    return stringify(out)
  }
  function fault (where, e) {
    const d = describe(e)
    send('fault', where, d.name !== undefined ? d.name : 'Error', d.name !== undefined ? d.message : d.log)
  }

  // The only way in: primitives only; returns a string or undefined.
  return function control (kind, a, b, c, d, e, f, h) {
    if (kind === 'call') invoke(a, b, c, d, e, f, h)
    else if (kind === 'reply') {
      const p = pending[a]
      if (!p) return
      delete pending[a]
      if (b === 'ok') {
        let v
        try { v = decodeValue(c) } catch (e) { p.reject(e); return }
        p.resolve(v)
      } else {
        const [name, message, code] = parse(c)
        p.reject(makeError(name, message, code === null ? undefined : code))
      }
    } else if (kind === 'fire') {
      const t = timers[a]
      if (!t) return
      if (!t.repeat) delete timers[a]
      try {
        apply(t.cb, t.handle, t.args)
      } catch (e) {
        fault('timer', e)
      }
    } else if (kind === 'exports') return exportsInfo()
    else if (kind === 'fault') fault('rejection', a)
    else if (kind === 'describe') {
      const d = describe(a)
      return stringify(d.name !== undefined ? [d.name, d.message, d.line] : ['Error', d.log])
    }
  }
})
