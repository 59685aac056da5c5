'use strict'
// One place where stable error codes (from Rust, see crates/errors) become named JavaScript Error classes.
// Callers match on `err.code` (stable) or `err.name` / `instanceof` (Beaker-style names); never on the message.

class LibvmsError extends Error {
  constructor (message, code, props) {
    super(message)
    this.code = code
    if (props) Object.assign(this, props)
  }

  get name () { return this.constructor.name }
}

// The one error list is in Rust (crates/errors `codes!`): each stable code with its class name. Archive names follow
// Beaker's DatArchive; the verifier's is VerificationError.
const LIST = require('./native').errorClasses()

const classes = { LibvmsError }
const byCode = {}
for (const { code, className } of LIST) {
  // A named class per code: `class NotFoundError extends LibvmsError`, with the code fixed.
  const cls = ({ [className]: class extends LibvmsError {
    constructor (message, props) { super(message || code, code, props) }
  } })[className]
  cls.code = code
  classes[className] = cls
  byCode[code] = cls
}

/** A native error as data (`{code, message, index?}`, see src/errors.rs) as the named class for its code. */
function fromData (data) {
  const props = data.index != null ? { index: Number(data.index) } : undefined
  return errorFor(data.code, data.message, props)
}

/**
 * Turn an error thrown by the addon into the named class for its code; other errors pass through. The addon puts
 * the code in the error's `cause` as JSON data (napi-rs carries no other field for async functions).
 */
function fromNative (err) {
  if (!err || err instanceof LibvmsError || !(err.cause instanceof Error)) return err
  let data
  try {
    data = JSON.parse(err.cause.message)
  } catch (_) {
    return err
  }
  return data && byCode[data.code] ? fromData(data) : err
}

/** Call a native function (sync or async) and rethrow its errors as named classes. */
function wrapNative (fn) {
  try {
    const out = fn()
    if (out && typeof out.then === 'function') return out.catch((e) => { throw fromNative(e) })
    return out
  } catch (e) {
    throw fromNative(e)
  }
}

function errorFor (code, message, props) {
  const cls = byCode[code]
  if (!cls) throw new Error(`unknown error code ${code}`)
  return new cls(message, props)
}

// Errors raised by the JavaScript layer only (VMFactory, CLI). Not in CODES, which lists what the addon can raise.
class CapacityError extends LibvmsError {
  constructor (message = 'This host is at maximum capacity', props) { super(message, 'AT_CAPACITY', props) }
}
class UsageError extends LibvmsError {
  constructor (message, props) { super(message, 'USAGE', props) }
}

module.exports = {
  ...classes,
  CapacityError,
  UsageError,
  fromNative,
  fromData,
  wrapNative,
  errorFor,
  CODES: LIST.map((c) => c.code)
}
