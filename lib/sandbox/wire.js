'use strict'
// Data between the main thread and a script's worker: top-level bytes travel as a marked latin1 string.
const { toJSONText } = require('../json')

const BYTES = '\u0000bytes'

/** The arguments a script sent (JSON text of an array), with its top-level bytes as Buffers. */
function decodeArgs (text) {
  const args = JSON.parse(text)
  return args.map((a) => a !== null && typeof a === 'object' && Object.hasOwn(a, BYTES) ? Buffer.from(a[BYTES], 'latin1') : a)
}

/** A host result as the JSON text the script gets (undefined: none); EncodingError if JSON cannot hold it. */
function encodeResult (value) {
  return value instanceof Uint8Array ? JSON.stringify({ [BYTES]: Buffer.from(value).toString('latin1') }) : toJSONText(value, 'API result')
}

/** An error as the script gets it: `[name, message, code|null]`. */
function errorFields (e) {
  const err = e instanceof Error ? e : new Error(String(e))
  return [String(err.name), String(err.message), typeof err.code === 'string' ? err.code : null]
}

module.exports = { BYTES, decodeArgs, encodeResult, errorFields }
