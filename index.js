'use strict'
// require('libvms'): the public API. Each class lives in lib/; the heavy lifting is in the Rust addon.
const errors = require('./lib/errors')
const CallLog = require('./lib/call-log')
const DatArchive = require('./lib/dat-archive')
const ReplicationHost = require('./lib/host')
const peers = require('./lib/peers')

module.exports = {
  CallLog,
  DatArchive,
  ReplicationHost,
  addPeer: peers.addPeer,
  errors
}
