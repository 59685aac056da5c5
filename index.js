'use strict'
// require('libvms'): the public API. Each class lives in lib/; the heavy lifting is in the Rust addon.
const errors = require('./lib/errors')
const CallLog = require('./lib/call-log')
const DatArchive = require('./lib/dat-archive')
const VM = require('./lib/vm')
const VMFactory = require('./lib/vm-factory')
const Verifier = require('./lib/verifier')
const RPCServer = require('./lib/rpc-server')
const RPCClient = require('./lib/rpc-client')
const ReplicationHost = require('./lib/host')
const peers = require('./lib/peers')

module.exports = {
  VM,
  VMFactory,
  CallLog,
  DatArchive,
  Verifier,
  RPCServer,
  RPCClient,
  ReplicationHost,
  addPeer: peers.addPeer,
  /** A new Ed25519 key pair `{ publicKey, secretKey }` (Buffers) for `new RPCClient({ keyPair })`. */
  generateKeyPair: () => require('./lib/native').generateKeyPair(),
  errors
}
