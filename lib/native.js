'use strict'
// Loads the native addon: LIBVMS_NATIVE if set, else a local build (./libvms.node, made by scripts/build.js), else
// the prebuilt platform package npm installed as an optional dependency (e.g. libvms-linux-x64-gnu). With none, the
// error says in one line what to do, since every entry point (require, import, the CLI) starts here.
const fs = require('node:fs')
const path = require('node:path')
const { platformTarget, platformPackage, noBinaryMessage } = require('./platform')

const root = path.join(__dirname, '..')

function load () {
  const explicit = process.env.LIBVMS_NATIVE
  if (explicit) return tryLoad(explicit, explicit)
  const local = path.join(root, 'libvms.node')
  if (fs.existsSync(local)) return tryLoad(local, local)
  const target = platformTarget()
  const pkg = target && platformPackage(target)
  let file = null
  try {
    file = pkg && require.resolve(pkg)
  } catch (_) {}
  if (file) return tryLoad(file, pkg)
  throw notBuilt(target)
}

function tryLoad (file, what) {
  try {
    return require(file)
  } catch (e) {
    throw coded(`libvms: the native addon ${what} cannot load (${firstLine(e.message)}); reinstall libvms, or ` +
      'build it from source with a Rust toolchain: `npm rebuild libvms` (where npm blocks install scripts, first `npm install-scripts approve libvms`)')
  }
}

function notBuilt (target) {
  return coded(noBinaryMessage(target))
}

function coded (message) {
  const err = new Error(message)
  err.code = 'ADDON_NOT_BUILT'
  // The fix is in the environment, not in the caller: an uncaught one prints this line, not a stack.
  err.stack = `Error: ${message}`
  return err
}

function firstLine (s) {
  return String(s).split('\n')[0]
}

module.exports = load()
