'use strict'
// Helpers for the commands that talk RPC.

/** An RPC error from the wire ({code, message: err.name, data: err.message}) as one readable line. */
function rpcErrorText (e) {
  if (e && e.data !== undefined && e.message) return `${e.message}: ${typeof e.data === 'string' ? e.data : JSON.stringify(e.data)}`
  return (e && e.message) || String(e)
}

module.exports = { rpcErrorText }
