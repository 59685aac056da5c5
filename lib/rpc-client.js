'use strict'
// RPCClient: the API of nodevms-client 2.0.0 (connect, backendInfo, one method per exported function, events
// open/ready/error/close), over the Rust transport in crates/rpc.
const { EventEmitter } = require('node:events')

const native = require('./native')
const { addPeer } = require('./peers')
const { wrapNative, BadArgumentError, ClosedError } = require('./errors')

const DEFAULT_TIMEOUT = 5e3

class RPCClient extends EventEmitter {
  /** @param {{timeout?: number}} [opts] reply timeout of every call in ms (default 5000, as nodevms-client). */
  constructor (opts = {}) {
    super()
    this.url = null
    this.backendInfo = null
    this._timeout = (opts && opts.timeout) || DEFAULT_TIMEOUT
    this._conn = null
    this._connecting = false
  }

  /**
   * Open `url` (`ws://host:port/path`) as `opts.user` and handshake. Rejects with the wire error object when the
   * handshake is refused (nothing mounted there), as nodevms-client did.
   */
  async connect (url, opts = {}) {
    if (this._conn || this._connecting) throw new Error('Already connected')
    if (typeof url !== 'string') throw new BadArgumentError('url must be a string')
    this._connecting = true
    try {
      const user = opts && opts.user != null ? String(opts.user) : null
      const conn = await wrapNative(() => native.rpcOpen(url, user, this._timeout))
      this._conn = conn
      this.url = url
      this._watch(conn)
      this.emit('open')
      const reply = await wrapNative(() => conn.handshake())
      if (!reply.ok) {
        this._conn = null
        await conn.close()
        throw JSON.parse(reply.json)
      }
      this.backendInfo = JSON.parse(reply.json)
      learnReplicationPeer(url, this.backendInfo)
      for (const name of this.backendInfo.methods || []) {
        // Names of our own API (connect, close, on...) stay ours; `call(name, args)` reaches those methods.
        if (!(name in this)) this[name] = (...args) => this.call(name, args)
      }
      this.emit('ready')
    } catch (e) {
      if (this.listenerCount('error') > 0) this.emit('error', e)
      throw e
    } finally {
      this._connecting = false
    }
  }

  /** Call `method` with the array `args`. Rejects with the wire error object, or a TimeoutError / ClosedError. */
  async call (method, args = []) {
    const conn = this._conn
    if (!conn) throw new ClosedError('RPC client is not connected')
    const reply = await wrapNative(() => conn.call(String(method), JSON.stringify(args), this._timeout))
    if (!reply.ok) throw JSON.parse(reply.json)
    return reply.json == null ? undefined : JSON.parse(reply.json)
  }

  /** Close the connection; resolves once it is closed. Later calls reject with ClosedError. Idempotent. */
  async close () {
    const conn = this._conn
    this._conn = null
    if (conn) await wrapNative(() => conn.close())
  }

  _watch (conn) {
    // Pending while the socket is open (that keeps Node alive, as a ws socket does); then 'error'? and 'close'.
    conn.closed().then((info) => {
      if (this._conn === conn) this._conn = null
      if (info.error && this.listenerCount('error') > 0) this.emit('error', new ClosedError(info.error))
      this.emit('close', info.code ?? 1006, info.reason)
    }, () => {})
  }
}

/**
 * A server that replicates its VMs names the port in the handshake (`replicationPort`): remember it as a peer, on the
 * host this client reached, so `CallLog.fetch` / `new DatArchive(url)` of that VM's URLs find it.
 */
function learnReplicationPeer (url, info) {
  const port = info && info.replicationPort
  if (!Number.isInteger(port) || port < 1 || port > 65535) return
  let host
  try {
    host = new URL(url).hostname
  } catch {
    return
  }
  addPeer(`${host}:${port}`)
}

module.exports = RPCClient
