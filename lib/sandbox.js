'use strict'
// The context a VM script runs in: a fresh Node `vm` context per evaluation, holding exactly the globals that
// libvms 2 gave scripts (module, exports, System, console, Buffer, the six timer functions).
const nodeVm = require('node:vm')

// The archive methods scripts may use, and nothing else (SPEC: System.files).
const FILES_METHODS = ['getInfo', 'stat', 'readFile', 'readdir', 'writeFile', 'mkdir', 'unlink', 'rmdir', 'history']

function filesApi (archive) {
  const api = {}
  for (const name of FILES_METHODS) api[name] = (...args) => archive[name](...args)
  return api
}

/**
 * Evaluate `code` in a fresh context. Returns the script's exports and its `System` object, whose `caller.id` the
 * VM sets before each call. `apis` is a Map of extra System members (addAPI).
 */
function evaluate (code, { archive, apis, filename = 'vm-script.js' }) {
  const System = { caller: { id: undefined }, files: filesApi(archive) }
  for (const [name, methods] of apis) System[name] = methods
  // A deliberately nondeterministic API, only for tests of verification failure.
  if (process.env.NODE_ENV === 'test') System.test = { random: () => Math.random() }

  const module = { exports: {} }
  const context = nodeVm.createContext({
    module,
    exports: module.exports,
    System,
    console,
    Buffer,
    setTimeout,
    clearTimeout,
    setInterval,
    clearInterval,
    setImmediate,
    clearImmediate
  })
  new nodeVm.Script(code, { filename }).runInContext(context)
  return { exports: context.module.exports, System }
}

module.exports = { evaluate, FILES_METHODS }
