'use strict'
// The escape suite: well-known ways out of a node:vm context, each tried from a VM script. Every technique hands
// what it reached to `probe`, which tries to build a function from a string out of it and get `process`,
// `require` or the host's `globalThis`. Inside the sandbox, code generation from strings is off and nothing of the
// host is reachable, so every probe must answer 'safe'. The probe itself is checked against a plain node:vm
// context holding one host object, where it must find the way out (so this suite can fail).
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const nodeVm = require('node:vm')

const { VM } = require('..')
const { tmpdir } = require('./helpers')

// Shared by the control check and the VM script.
const PROBE = `
function probe (v) {
  const found = []
  const tryF = (F) => {
    if (typeof F !== 'function') return
    for (const src of ['return process', 'return require', 'return globalThis']) {
      try {
        const r = F(src)()
        if ((r && typeof r.exit === 'function') || typeof r === 'function' || (r && typeof r.process === 'object')) found.push(src)
      } catch (_) {}
    }
  }
  try { if (typeof v === 'function') tryF(v.constructor) } catch (_) {}
  try { tryF(v.constructor.constructor) } catch (_) {}
  try { tryF(Object.getPrototypeOf(v).constructor.constructor) } catch (_) {}
  try { tryF(Object.getPrototypeOf(Object.getPrototypeOf(v)).constructor.constructor) } catch (_) {}
  return found.length ? 'ESCAPED: ' + found.join(', ') : 'safe'
}
function probeAll (list) {
  list = Array.from(list)
  for (const v of list) { const r = probe(v); if (r !== 'safe') return r }
  return 'safe'
}
`

// Each technique: an exported method returning probe's verdict.
const TECHNIQUES = {
  // Direct routes: the global object and the globals libvms gives scripts.
  globalThis: 'probe(globalThis)',
  topLevelThis: 'probe(TOP_THIS)',
  globalPrototype: 'probe(Object.getPrototypeOf(globalThis))',
  everyGlobal: `probeAll(Object.getOwnPropertyNames(globalThis).flatMap((k) => {
      const d = Object.getOwnPropertyDescriptor(globalThis, k); return [d.value, d.get, d.set] }))`,
  freeNames: "typeof process + typeof require + typeof global + typeof module.require === 'undefinedundefinedundefinedundefined' ? 'safe' : 'ESCAPED: names'",
  System: 'probeAll([System, System.caller, System.files, Object.getPrototypeOf(System)])',
  moduleAndExports: 'probeAll([module, exports, module.exports])',
  // System.files: its functions, promises, results and errors.
  filesFunction: 'probeAll(Object.values(System.files))',
  filesPromise: "probe(System.files.readFile('/dat.json'))",
  filesResult: "probeAll([await System.files.readdir('/'), await System.files.getInfo()])",
  filesStat: "(async () => { const s = await System.files.stat('/dat.json'); return probeAll([s, s.mtime, s.isFile]) })()",
  filesBytes: "probe(await System.files.readFile('/dat.json', 'binary'))",
  filesError: "(async () => { try { await System.files.readFile('/nope') } catch (e) { return probe(e) } return 'no error' })()",
  filesArgumentProxy: `(async () => { let seen = []
      const p = new Proxy({}, { get (t, k, r) { seen.push(r, t); return undefined }, ownKeys (t) { seen.push(t); return [] } })
      try { await System.files.writeFile('/p', p) } catch (e) { seen.push(e) }
      return probeAll(seen.slice()) })()`,
  filesArgumentToString: `(async () => { let seen = []
      const o = { toString () { seen.push(this, arguments.callee.caller); return 'x' }, toJSON () { seen.push(arguments); return 'y' } }
      try { await System.files.writeFile(o, o) } catch (e) { seen.push(e) }
      return probeAll(seen) })()`,
  stackOverflowIntoHost: `(() => { let caught = []
      const deep = (n) => { try { return deep(n + 1) } catch (e) { try { System.files.readFile('/dat.json') } catch (e2) { caught.push(e2) } return caught.push(e) } }
      deep(0)
      return probeAll(caught) })()`,
  // addAPI members: functions, results, errors.
  apiFunction: 'probeAll([System.greeter, System.greeter.hello])',
  apiResult: "probeAll([System.greeter.hello('x'), await System.greeter.hello('x')])",
  apiError: "(async () => { try { await System.greeter.fail() } catch (e) { return probe(e) } return 'no error' })()",
  apiObjectResult: 'probe(await System.greeter.object())',
  // console and util.inspect hooks.
  console: 'probeAll([console, console.log, Object.getPrototypeOf(console)])',
  inspectHook: `(() => { const seen = []
      console.log({ [Symbol.for('nodejs.util.inspect.custom')] (depth, options, inspect) { seen.push(options, inspect, this); return 'x' } })
      console.log({ inspect (depth, options) { seen.push(options); return 'x' } })
      return probeAll(seen) })()`,
  consoleGetterCaller: `(() => { const seen = []
      console.log({ get x () { seen.push(arguments.callee.caller); return 1 } }, { toString () { seen.push(arguments.callee.caller); return '' } })
      return probeAll(seen) })()`,
  // Buffer, its prototype and instances.
  Buffer: "probeAll([Buffer, Buffer.prototype, Buffer.from('x'), Buffer.alloc(2), Object.getPrototypeOf(Buffer)])",
  // Timers: handles, the `this` of callbacks, callers.
  timerHandles: 'probeAll([setTimeout(() => {}, 1), setInterval(() => {}, 1e6), setImmediate(() => {})].map((h) => { clearTimeout(h); return h }))',
  timerThis: 'await new Promise((resolve) => setTimeout(function () { resolve(probe(this)) }, 1))',
  timerCaller: 'await new Promise((resolve) => setTimeout(function cb () { resolve(probeAll([cb.caller, arguments.callee.caller])) }, 1))',
  immediateThis: 'await new Promise((resolve) => setImmediate(function () { resolve(probe(this)) }))',
  // Stack traces: call sites of host frames (timer dispatch, the call's invocation, a files reply).
  callSitesInCall: `(() => { const seen = []
      Error.prepareStackTrace = (e, sites) => { for (const s of sites) seen.push(s.getThis(), s.getFunction(), s); return '' }
      new Error('x').stack
      Error.prepareStackTrace = undefined
      return probeAll(seen) })()`,
  callSitesInTimer: `await new Promise((resolve) => setTimeout(() => { const seen = []
      Error.prepareStackTrace = (e, sites) => { for (const s of sites) seen.push(s.getThis(), s.getFunction()); return '' }
      new Error('x').stack
      Error.prepareStackTrace = undefined
      resolve(probeAll(seen)) }, 1))`,
  callSitesInReply: `(async () => { const seen = []
      await System.files.readFile('/dat.json')
      Error.prepareStackTrace = (e, sites) => { for (const s of sites) seen.push(s.getThis(), s.getFunction()); return '' }
      new Error('x').stack
      Error.prepareStackTrace = undefined
      return probeAll(seen) })()`,
  methodCaller: '(function m () { return probeAll([m.caller, arguments.callee.caller]) })()',
  // Code generation from strings and wasm.
  evalAndFunction: `(() => { const r = []
      for (const f of [() => eval('process'), () => Function('return process')(), () => new (async function () {}).constructor('return process')(),
        () => new (function * () {}).constructor('return process')().next(), () => setTimeout('globalThis.x = 1', 1)]) {
        try { const v = f(); if (v && typeof v.exit === 'function') return 'ESCAPED: codegen' } catch (e) { r.push(e) }
      }
      return probeAll(r) })()`,
  wasm: `(() => { try { new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])); return 'ESCAPED: wasm compiled' } catch (e) { return probe(e) } })()`,
  // Values the host takes from the script: thenables, toJSON, species, thrown objects.
  thenableLeak: "typeof LEAKED.resolve === 'function' ? probe(LEAKED.resolve) : 'safe'",
  toJSONLeak: 'probeAll(LEAKED.toJSON || [])',
  speciesLeak: 'probeAll(LEAKED.species || [])',
  argumentsObject: 'probeAll([ARGS, ARGS[0]])'
}

function script () {
  let code = PROBE + `
const TOP_THIS = this
const LEAKED = {}
let ARGS = null
exports.thenable = () => ({ then (resolve, reject) { LEAKED.resolve = resolve; resolve(1) } })
exports.toJSON = () => ({ toJSON (key) { LEAKED.toJSON = [this, key, ...arguments]; return 1 } })
exports.species = () => {
  class P extends Promise { static get [Symbol.species] () { LEAKED.species = [...arguments]; return Promise } }
  return P.resolve(1).then((v) => v)
}
exports.setArgs = function (a) { ARGS = arguments; return 1 }
`
  for (const [name, expr] of Object.entries(TECHNIQUES)) code += `exports[${JSON.stringify(name)}] = async function () { return ${expr} }\n`
  return code
}

test('the probe finds a way out when a host object is reachable (control)', () => {
  const context = nodeVm.createContext({ leak: {} })
  assert.match(nodeVm.runInContext(PROBE + 'probe(leak)', context), /^ESCAPED/)
})

test(`escape suite: ${Object.keys(TECHNIQUES).length} techniques, none reaches the host`, async (t) => {
  const vm = new VM(script())
  vm.addAPI('greeter', {
    hello: (who) => `hello ${who}`,
    fail: () => { throw new TypeError('host error') },
    object: () => ({ nested: { list: [1, 2] } })
  })
  await vm.deploy({ dir: path.join(tmpdir(t), 'vm') })
  t.after(() => vm.close())
  for (const m of ['thenable', 'toJSON', 'species']) await vm.executeCall({ methodName: m })
  await vm.executeCall({ methodName: 'setArgs', args: [{ a: [1] }] })

  assert.ok(Object.keys(TECHNIQUES).length >= 30)
  const verdicts = {}
  for (const name of Object.keys(TECHNIQUES)) {
    try {
      verdicts[name] = await vm.executeCall({ methodName: name })
    } catch (e) {
      verdicts[name] = `threw ${e.name}: ${e.message}`
    }
  }
  const expected = Object.fromEntries(Object.keys(TECHNIQUES).map((k) => [k, 'safe']))
  assert.deepEqual(verdicts, expected)
})

test('import() is refused: a script that could call it does not deploy', async (t) => {
  for (const code of ["exports.f = () => import('fs')", "exports.f = () => import /* x */ ('fs')", 'exports.f = () => import\n("fs")']) {
    const vm = new VM(code)
    await assert.rejects(vm.deploy({ dir: path.join(tmpdir(t), 'vm') }), { name: 'SyntaxError', message: /import\(\) is not allowed/ })
    await vm.close()
  }
})

test('a script that calls process.exit or throws host-style errors at top level cannot end the host', async (t) => {
  const vm = new VM('exports.exit = () => process.exit(1)\nexports.ok = () => 1')
  await vm.deploy({ dir: path.join(tmpdir(t), 'vm') })
  t.after(() => vm.close())
  await assert.rejects(vm.executeCall({ methodName: 'exit' }), { name: 'ReferenceError' })
  assert.equal(await vm.executeCall({ methodName: 'ok' }), 1)
})
