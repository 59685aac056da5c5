'use strict'
// The worker thread that holds one VM's hardened context. The worker realm itself is host code (it can `require`),
// so nothing of it may reach the context: the context holds one host function (`post`, primitives in, nothing out)
// and the worker calls the context's `control` with primitives only. Messages to and from the main thread are
// arrays of primitives.
const { parentPort, workerData } = require('node:worker_threads')
const fs = require('node:fs')
const path = require('node:path')
const nodeVm = require('node:vm')
const { types } = require('node:util')

const BOOTSTRAP = fs.readFileSync(path.join(__dirname, 'bootstrap.js'), 'utf8')
const PRIMITIVE = new Set(['string', 'number', 'boolean', 'undefined'])
const EXIT_MEMORY = 86 // the script's array buffers went past memoryMb (see bootstrap.js)

const timers = new Map()
let timersPending = false // told to the main thread, which holds the process open for a script's pending timers
let control = null
let contextPromiseProto = null

function isPrimitive (v) { return PRIMITIVE.has(typeof v) }

// The context's only way out. Strict, never returns anything, drops anything that is not a primitive.
function post (kind, a, b, c, d, e, f) {
  if (!isPrimitive(kind) || !isPrimitive(a) || !isPrimitive(b) || !isPrimitive(c) || !isPrimitive(d) || !isPrimitive(e) || !isPrimitive(f)) return
  if (kind === 'timer') return setTimer(a, b, c)
  if (kind === 'clear') return clearTimer(a)
  if (kind === 'limit') process.exit(EXIT_MEMORY) // in a worker: ends this thread at once, not the process
  if (kind === 'done') return done(a, b, c, d, e, f)
  if (kind === 'request' || kind === 'console' || kind === 'fault') {
    flushDone() // answers leave before anything the next call asks for
    parentPort.postMessage([kind, a, b, c, d, e])
  }
}

// Calls run one at a time, in the order sent; answers are sent together, once per turn, and always before the next
// call starts: a call that then spins cannot hold back the answer of one that returned. A call is seven items (seq,
// method, args, caller, entry index, clock, a replay's oracle records); an answer six (seq, how, a, b, the time the
// call read, a replay's uses). `started[0]`, shared with the main thread, is the seq of the last call started: its
// watchdog never stops a call that has already returned.
const started = new Int32Array(workerData.started)
let calls = []
let next = 0 // calls[next..] wait; taken seven items at a time
let running = false
let pumping = false
let answers = []

function done (seq, how, a, b, time, replayed) {
  if (answers.length === 0) queueMicrotask(flushDone)
  answers.push(seq, how, a, b, time, replayed)
  running = false
  if (!pumping) queueMicrotask(pump)
}

function flushDone () {
  if (answers.length === 0) return
  const list = answers
  answers = []
  parentPort.postMessage(['done', list])
}

function pump () {
  if (pumping) return
  pumping = true
  while (!running && next < calls.length) {
    flushDone()
    running = true
    const seq = calls[next]
    const method = calls[next + 1]
    const argsText = calls[next + 2]
    const callerText = calls[next + 3]
    const index = calls[next + 4]
    const clock = calls[next + 5]
    const recorded = calls[next + 6]
    next += 7
    if (next === calls.length) { calls = []; next = 0 }
    Atomics.store(started, 0, seq)
    run('call', seq, method, argsText, callerText, index, clock, recorded)
  }
  pumping = false
}

function setTimer (id, ms, repeat) {
  if (typeof id !== 'number' || typeof ms !== 'number') return
  clearTimer(id)
  const fire = () => {
    if (!repeat) timers.delete(id)
    run('fire', id)
    tellTimers()
  }
  if (ms < 0) timers.set(id, { immediate: setImmediate(fire) })
  else timers.set(id, { timer: repeat ? setInterval(fire, ms) : setTimeout(fire, ms) })
  tellTimers()
}

function tellTimers () {
  const now = timers.size > 0
  if (now !== timersPending) parentPort.postMessage(['timers', timersPending = now])
}

function clearTimer (id) {
  const t = timers.get(id)
  if (!t) return
  timers.delete(id)
  if (t.immediate) clearImmediate(t.immediate)
  else clearTimeout(t.timer)
  tellTimers()
}

// Call into the context. Whatever it throws stays here (it is never read: that could run script code on a host
// value, and the context reports its own failures through `fault`).
function run (kind, a, b, c, d, e, f, h) {
  try {
    return control(kind, a, b, c, d, e, f, h)
  } catch (_) {
    return undefined
  }
}

/** `[name, message, line?]` of an error thrown while evaluating, without handing a host error to the context. */
function describeThrown (e) {
  if (e instanceof Error) { // a host (worker realm) error: read it here
    const m = /vm-script\.js:(\d+)/.exec(String(e.stack))
    return [String(e.name), String(e.message), m ? Number(m[1]) : null]
  }
  const text = run('describe', e)
  try { return JSON.parse(text) } catch (_) { return ['Error', 'the script threw a value that cannot be described'] }
}

function start ({ code, filename, options }) {
  if (/\bimport\s*(\(|\/[/*])/.test(code)) {
    // `import()` in a node:vm script always rejects with a host error (Node 20 has no safe loader hook), so a
    // script that could call it is refused.
    return ['SyntaxError', 'import() is not allowed in VM scripts']
  }
  let script
  try {
    script = new nodeVm.Script(code, { filename })
  } catch (e) {
    return describeThrown(e)
  }
  // The null-prototype sandbox object keeps host Object.prototype out of the global's lookups.
  const context = nodeVm.createContext(Object.create(null), {
    name: filename,
    codeGeneration: { strings: false, wasm: false }
  })
  const setup = new nodeVm.Script(BOOTSTRAP, { filename: 'libvms-bootstrap.js' }).runInContext(context)
  control = setup(post, JSON.stringify(options))
  contextPromiseProto = nodeVm.runInContext('Promise.prototype', context)
  parentPort.postMessage(['evaluating'])
  try {
    script.runInContext(context)
  } catch (e) {
    return describeThrown(e)
  }
  return null
}

// Errors outside a call never end the worker: a rejection nobody handled is reported as the VM's fault.
process.on('unhandledRejection', (reason, promise) => {
  // Only a promise of the context may hand its reason to the context (a host value never goes in).
  if (control && Object.getPrototypeOf(promise) === contextPromiseProto) run('fault', reason)
  else parentPort.postMessage(['fault', 'rejection', 'Error', 'a host promise rejected'])
})
process.on('uncaughtException', (e) => {
  parentPort.postMessage(['fault', 'uncaught', 'Error', 'an uncaught exception in the VM worker'])
})

parentPort.on('message', (m) => {
  const kind = m[0]
  if (kind === 'calls') {
    for (const v of m[1]) calls.push(v)
    pump()
  } else if (kind === 'reply') run('reply', m[1], m[2], m[3])
})

const failed = start(workerData)
parentPort.postMessage(failed ? ['failed', failed[0], failed[1], failed[2]] : ['ready', run('exports')])
