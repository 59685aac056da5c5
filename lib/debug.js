'use strict'
// A tiny logger following the `debug` package's convention, so users need no extra dependency:
// DEBUG=libvms* (or libvms:cli,libvms:factory; `-ns` excludes) turns namespaces on; output goes to stderr.
const util = require('node:util')

function patterns (spec) {
  const on = []
  const off = []
  for (const part of String(spec || '').split(/[\s,]+/)) {
    if (!part) continue
    const neg = part[0] === '-'
    const src = (neg ? part.slice(1) : part).replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')
    ;(neg ? off : on).push(new RegExp('^' + src + '$'))
  }
  return { on, off }
}

/** Is `namespace` enabled by the DEBUG value `spec` (default: process.env.DEBUG)? */
function enabled (namespace, spec = process.env.DEBUG) {
  const { on, off } = patterns(spec)
  if (off.some((re) => re.test(namespace))) return false
  return on.some((re) => re.test(namespace))
}

/** A logging function for `namespace`; a no-op unless DEBUG enables it (read once, at creation). */
function createDebug (namespace) {
  const isOn = enabled(namespace)
  const log = (...args) => {
    if (!isOn) return
    process.stderr.write(`${namespace} ${util.format(...args)}\n`)
  }
  log.enabled = isOn
  log.namespace = namespace
  return log
}

module.exports = createDebug
module.exports.enabled = enabled
