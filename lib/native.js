'use strict'
// Loads the compiled addon (built by `npm install` through scripts/build.js).
const path = require('node:path')

const file = process.env.LIBVMS_NATIVE || path.join(__dirname, '..', 'libvms.node')
let native
try {
  native = require(file)
} catch (e) {
  const err = new Error(
    `libvms: the native addon is missing or cannot load (${file}).\n` +
    'Run `npm install` (or `npm run build`) in the libvms package; it needs the Rust toolchain (cargo).\n' +
    `Cause: ${e.message}`
  )
  err.code = 'ADDON_NOT_BUILT'
  throw err
}
module.exports = native
