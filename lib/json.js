'use strict'
const { EncodingError } = require('./errors')

/**
 * JSON text of a value (`undefined` where JSON.stringify gives none: undefined, functions, symbols), or an
 * EncodingError that says why it cannot be represented (BigInt, cycles, a throwing toJSON).
 */
function toJSONText (value, what = 'value') {
  if (value instanceof RawJSON) return value.rawJSON
  try {
    return JSON.stringify(value)
  } catch (e) {
    throw new EncodingError(`${what} is not JSON-serialisable: ${e.message}`)
  }
}

/**
 * JSON text kept as it is: toJSONText writes it unchanged instead of parsing and writing it again (a replay's oracle
 * records, see lib/replay-entries.js). Anything else that serialises it (JSON.stringify) gets the parsed value.
 */
class RawJSON {
  constructor (text) {
    this.rawJSON = text
  }

  toJSON () {
    return JSON.parse(this.rawJSON)
  }
}

/** JSON bytes of a value; one that has no JSON text at all is an EncodingError too. */
function encodeJSON (value, what = 'value') {
  const text = toJSONText(value, what)
  if (text === undefined) throw new EncodingError(`${what} is not JSON-serialisable (${typeof value})`)
  return Buffer.from(text)
}

module.exports = { toJSONText, encodeJSON, RawJSON }
