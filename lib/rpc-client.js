'use strict'
// RPCClient: the API of nodevms-client 2.0.0 (connect, backendInfo, one method per exported function, events
// open/ready/error/close), over the Rust transport in crates/rpc.
const { EventEmitter } = require('node:events')

const native = require('./native')
const { addPeer } = require('./peers')
const { wrapNative, fromData, BadArgumentError, ClosedError, EncodingError } = require('./errors')

const DEFAULT_TIMEOUT = 5e3

class RPCClient extends EventEmitter {
  /**
   * @param {{timeout?: number, keyPair?: {publicKey: Buffer, secretKey: Buffer}}} [opts] reply timeout of every call
   *   in ms (default 5000, as nodevms-client); `keyPair` (from `generateKeyPair()`) signs every call.
   */
  constructor (opts = {}) {
    super()
    const keyPair = opts && opts.keyPair
    if (keyPair != null && (!keyPair.secretKey || ![32, 64].includes(keyPair.secretKey.length))) {
      throw new BadArgumentError('keyPair.secretKey must be a 32- or 64-byte Ed25519 secret key')
    }
    this._secretKey = keyPair ? Buffer.from(keyPair.secretKey) : null
    // The latest receipt (see `lastReceipt`), kept as its JSON text until someone reads it.
    this._receipt = null
    this._receiptText = null
    this.url = null
    this.backendInfo = null
    this._timeout = (opts && opts.timeout) || DEFAULT_TIMEOUT
    this._conn = null
    this._connecting = false
    this._calls = null // token -> {resolve, reject}: the connection's calls awaiting their reply
    this._nextToken = 0
  }

  /** The receipt of the latest signed call answered (see README, Receipts). Parsed when first read: a client
   * making many calls pays for the receipts it looks at. */
  get lastReceipt () {
    if (this._receiptText !== null) {
      this._receipt = JSON.parse(this._receiptText)
      this._receiptText = null
    }
    return this._receipt
  }

  set lastReceipt (receipt) {
    this._receipt = receipt
    this._receiptText = null
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
      const calls = new Map()
      const conn = await wrapNative(() => native.rpcOpen(url, user, this._timeout, () => settle(conn, calls, this)))
      if (this._secretKey) wrapNative(() => conn.setSecretKey(this._secretKey))
      this._conn = conn
      this._calls = calls
      this.url = url
      this._watch(conn, calls)
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
  call (method, args = []) {
    const { _conn: conn, _calls: calls } = this
    if (!conn) return Promise.reject(new ClosedError('RPC client is not connected'))
    if (this._secretKey) {
      const bad = uncanonical(args)
      if (bad) return Promise.reject(new EncodingError(`cannot sign ${method}: ${bad} has no canonical JSON form`))
    }
    return new Promise((resolve, reject) => {
      const token = this._nextToken
      this._nextToken = (token + 1) >>> 0
      // Sent now (so calls go out in the order they were made); the reply arrives through settle().
      wrapNative(() => conn.call(token, String(method), JSON.stringify(args), this._timeout))
      calls.set(token, { resolve, reject })
    })
  }

  /** Close the connection; resolves once it is closed. Later calls reject with ClosedError. Idempotent. */
  async close () {
    const conn = this._conn
    this._conn = null
    if (conn) await wrapNative(() => conn.close())
  }

  _watch (conn, calls) {
    // Pending while the socket is open (that keeps Node alive, as a ws socket does); then 'error'? and 'close'.
    conn.closed().then((info) => {
      if (this._conn === conn) this._conn = null
      // Every reply is queued by now; a call made as the connection went down may still be waiting.
      settle(conn, calls, this)
      for (const p of calls.values()) p.reject(new ClosedError('the connection closed before the reply'))
      calls.clear()
      if (info.error && this.listenerCount('error') > 0) this.emit('error', new ClosedError(info.error))
      this.emit('close', info.code ?? 1006, info.reason)
    }, () => {})
  }
}

/** Settle the calls whose replies have arrived (native calls back when some are waiting). */
function settle (conn, calls, client) {
  for (const r of conn.takeReplies()) {
    const p = calls.get(r.token)
    if (!p) continue
    calls.delete(r.token)
    if (r.receipt != null) {
      client._receiptText = r.receipt
      if (client.listenerCount('receipt') > 0) client.emit('receipt', client.lastReceipt)
    }
    if (r.error != null) p.reject(fromData(r.error))
    else if (!r.ok) p.reject(JSON.parse(r.json))
    else p.resolve(r.json == null ? undefined : JSON.parse(r.json))
  }
}

/**
 * What RFC 8785 cannot represent, so a signing client refuses it rather than sign something else: -0, NaN and
 * infinities, lone surrogates (in strings and member names). Returns a description, or null.
 */
function uncanonical (v, seen = new Set()) {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : Number.isFinite(v) ? null : String(v)
  if (typeof v === 'string') return v.isWellFormed() ? null : 'a lone surrogate'
  if (v === null || typeof v !== 'object' || seen.has(v)) return null
  if (typeof v.toJSON === 'function') return null
  seen.add(v)
  for (const k of Object.keys(v)) {
    const bad = (Array.isArray(v) ? null : uncanonical(k)) || uncanonical(v[k], seen)
    if (bad) return bad
  }
  return null
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
