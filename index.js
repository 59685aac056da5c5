'use strict'
// require('libvms'): the public API. Each class lives in lib/; the heavy lifting is in the Rust addon.
const errors = require('./lib/errors')
const CallLog = require('./lib/call-log')
const DatArchive = require('./lib/dat-archive')
const RPCServer = require('./lib/rpc-server')
const RPCClient = require('./lib/rpc-client')

module.exports = {
  CallLog,
  DatArchive,
  RPCServer,
  RPCClient,
  errors
}
