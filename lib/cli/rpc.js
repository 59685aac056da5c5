'use strict'
// The RPC classes, from the package's public API. They come with issue 5 (rpc-binding); until this build has
// them, commands that need the network say so instead of failing obscurely.
const { UsageError } = require('../errors')

function rpc (name) {
  const cls = require('../..')[name]
  if (typeof cls !== 'function') throw new UsageError(`this build of libvms has no ${name} yet (it comes with the RPC binding)`)
  return cls
}

/** The port a listening RPCServer is bound to (port 0 asks the OS to choose). */
function boundPort (server, requested) {
  if (Number.isInteger(server.port) && server.port > 0) return server.port
  const addr = typeof server.address === 'function' ? server.address() : null
  if (addr && Number.isInteger(addr.port)) return addr.port
  return requested
}

/** An RPC error from the wire ({code, message: err.name, data: err.message}) as one readable line. */
function rpcErrorText (e) {
  if (e && e.data !== undefined && e.message) return `${e.message}: ${typeof e.data === 'string' ? e.data : JSON.stringify(e.data)}`
  return (e && e.message) || String(e)
}

module.exports = { RPCServer: () => rpc('RPCServer'), RPCClient: () => rpc('RPCClient'), boundPort, rpcErrorText }
