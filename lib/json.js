'use strict'
const { EncodingError } = require('./errors')

/** JSON bytes of a value, or an EncodingError that says why it cannot be represented (BigInt, cycles, functions). */
function encodeJSON (value, what = 'value') {
  let text
  try {
    text = JSON.stringify(value)
  } catch (e) {
    throw new EncodingError(`${what} is not JSON-serialisable: ${e.message}`)
  }
  if (text === undefined) throw new EncodingError(`${what} is not JSON-serialisable (${typeof value})`)
  return Buffer.from(text)
}

module.exports = { encodeJSON }
