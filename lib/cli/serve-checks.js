'use strict'
// What `exec` / `factory` check before creating anything, and how they explain a failed start: each message says
// where the problem is (file and line, directory, port) and what to do next.
const fs = require('node:fs')
const path = require('node:path')
const nodeVm = require('node:vm')
const { UsageError } = require('../errors')

// The file name the sandbox gives a script (see lib/sandbox.js); stack lines with it are the user's script.
const SANDBOX_FILE = 'vm-script.js'

/** A script that does not compile is refused with its file, line and the offending source line. */
function checkScript (code, scriptPath) {
  try {
    new nodeVm.Script(code, { filename: scriptPath }) // eslint-disable-line no-new
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e
    // V8 puts "file:line", the source line and a caret line at the head of a syntax error's stack.
    const head = String(e.stack || '').split('\n')
    const at = /:(\d+)$/.exec(head[0] || '')
    const where = at ? `${scriptPath}:${at[1]}` : scriptPath
    const context = at && head[1] !== undefined && head[2] !== undefined && /^\s*\^+\s*$/.test(head[2]) ? `\n  ${head[1]}\n  ${head[2]}` : ''
    throw new UsageError(`${where}: SyntaxError: ${e.message}${context}\nFix the script and run again.`)
  }
}

/**
 * `dir` must be a VM directory (a restart), an empty folder or not exist. Returns 'new' or 'empty' (what a failed
 * first run must clean up) or null for a VM directory.
 */
function checkDataDir (dir) {
  let st
  try {
    st = fs.statSync(dir)
  } catch (e) {
    if (e.code === 'ENOENT') return 'new'
    throw e
  }
  if (!st.isDirectory()) throw new UsageError(`${dir} is a file, not a VM directory: choose another --dir`)
  if (fs.existsSync(path.join(dir, 'meta.json'))) return null
  if (fs.readdirSync(dir).length === 0) return 'empty'
  throw new UsageError(`${dir} exists and is not a VM directory (no meta.json); libvms will not turn it into one: choose a new or empty --dir`)
}

/** Undo a first run that failed, so no half-made VM directory is left to confuse `verify`. */
function removeFailedDir (dir, state) {
  if (state === 'new') fs.rmSync(dir, { recursive: true, force: true })
  if (state === 'empty') for (const name of fs.readdirSync(dir)) fs.rmSync(path.join(dir, name), { recursive: true, force: true })
}

/** "Name: message" of any thrown value (script errors come from another realm). */
function errorText (e) {
  if (e && typeof e === 'object' && typeof e.message === 'string') return `${e.name && e.name !== 'Error' ? e.name + ': ' : ''}${e.message}`
  return String(e)
}

/** " (script.js:12)": where in the user's script an error was thrown, from the sandbox's stack frames. */
function scriptLine (e, scriptPath) {
  const m = e && typeof e.stack === 'string' ? new RegExp(`${SANDBOX_FILE.replace('.', '\\.')}:(\\d+)`).exec(e.stack) : null
  return m ? ` (${scriptPath}:${m[1]})` : ''
}

/** Say which part of the start failed: the directory (locked), the script's top level, or its init. */
function explainDeployError (e, { vm, dir, scriptPath, fresh }) {
  if (e && e.code === 'STORAGE_LOCKED') {
    e.message = `${dir} is in use by another process: is this VM already running? Stop it first, or pass another --dir. (${e.message})`
    return e
  }
  const kept = fresh ? 'nothing was kept' : 'the VM directory is unchanged apart from the logged attempt'
  if (vm._initFailed) {
    return withCode(new Error(`init of ${scriptPath} threw: ${errorText(e)}${scriptLine(e, scriptPath)}; ${kept}. Fix init and run again.`), 'INIT_FAILED')
  }
  if (vm.callLog && !vm.exports) {
    return withCode(new Error(`running ${scriptPath} threw: ${errorText(e)}${scriptLine(e, scriptPath)}; ${kept}. Fix the script and run again.`), 'SCRIPT_FAILED')
  }
  return e
}

/** A port in use (or an address this host does not have) is unusable input, exit 2, with the flag to change. */
function explainListenError (e, host, port, flag) {
  const msg = String(e && e.message)
  if (/in use|EADDRINUSE/i.test(msg)) {
    return new UsageError(`port ${port} on ${host} is in use (another libvms?): pick another with ${flag} PORT, or ${flag} 0 for any free port`)
  }
  if (/not available|EADDRNOTAVAIL|assign requested address/i.test(msg)) {
    return new UsageError(`cannot listen on ${host}: this machine has no such address (try --host 127.0.0.1 or 0.0.0.0)`)
  }
  return e
}

function withCode (err, code) {
  err.code = code
  return err
}

module.exports = { checkScript, checkDataDir, removeFailedDir, explainDeployError, explainListenError, errorText }
