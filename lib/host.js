'use strict'
// ReplicationHost: serves call logs and archives to any hypercore@10/11 peer over TCP and, when asked, to peers
// that find them on the Hyperswarm DHT (lib/swarm.js).
const native = require('./native')
const { wrapNative, BadArgumentError, ClosedError } = require('./errors')
const { swarmConfig, createSwarm, attach, joinAll } = require('./swarm')

class ReplicationHost {
  /**
   * Start listening on `host:port` (default 127.0.0.1, an OS-chosen port) at once; `add()` waits for it, and
   * `await host.ready()` surfaces a failure early (`port`/`address` are null until then). `swarm: true` also announces
   * every served log and archive on the public Hyperswarm DHT; `bootstrap` (or LIBVMS_BOOTSTRAP) on a private one.
   */
  constructor (opts = {}) {
    this._host = null
    this._swarm = null
    this._announcing = new Set()
    this._closing = null
    const { host = '127.0.0.1', port = 0, swarm, bootstrap, _corruptBlocks = false } = opts || {}
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new BadArgumentError('port must be 0..65535')
    const config = swarmConfig({ swarm, bootstrap })
    this._announces = !!config
    this._starting = wrapNative(() => native.startHost(`${host}:${port}`, !!_corruptBlocks)).then((h) => {
      this._host = h
      if (config) this._join(createSwarm(config))
    })
    this._starting.catch(() => {}) // surfaced by ready(), add() and listen()
  }

  _join (swarm) {
    this._swarm = swarm
    swarm.on('connection', (conn) => {
      let link
      try {
        link = this._host.link(conn.isInitiator, conn.handshakeHash, conn.remotePublicKey)
      } catch {
        return conn.destroy()
      }
      attach(conn, link)
    })
  }

  /** Same as `new ReplicationHost(opts)`, resolving once it listens. */
  static async listen (opts) {
    const h = new ReplicationHost(opts)
    await h.ready()
    return h
  }

  /** Resolves once listening (rejects when the port could not be bound). */
  async ready () {
    await this._starting
    return this
  }

  get port () { return this._host ? this._host.port : null }
  get address () { return this._host ? this._host.address : null }
  /** Whether this host announces on a Hyperswarm DHT. */
  get swarm () { return this._announces }

  /**
   * Serve an open CallLog or DatArchive (both of its logs); with a swarm, resolves once they are announced. `log`: the
   * call log of the VM writing the archive, which then is served only as far as the log's durable entries account for.
   */
  add (source, { log } = {}) {
    const p = this._add(source, log)
    this._announcing.add(p)
    const done = () => this._announcing.delete(p)
    p.then(done, done)
    return p
  }

  async _add (source, log) {
    await this._starting
    if (this._closing) throw new ClosedError('replication host is closed')
    let dks
    if (source && typeof source._live === 'function' && source.constructor.name === 'CallLog') {
      dks = wrapNative(() => this._host.addLog(source._live()))
    } else if (source && typeof source._open === 'function') {
      const drive = await source._open()
      if (log !== undefined && !(log && typeof log._live === 'function')) throw new BadArgumentError('add(archive, {log}) takes a CallLog')
      dks = wrapNative(() => this._host.addDrive(drive, log ? log._live() : undefined))
    } else {
      throw new BadArgumentError('add() takes a CallLog or a DatArchive')
    }
    if (this._swarm && !this._swarm.destroyed) await joinAll(this._swarm, dks, { server: true, client: false })
    return this
  }

  /** Resolves once everything added so far is announced on the DHT (at once without a swarm). */
  async announced () {
    await Promise.all([...this._announcing].map(p => p.catch(() => {})))
  }

  /** Stop listening and announcing and end every session. Idempotent. */
  close () {
    if (!this._closing) {
      this._closing = this._starting.catch(() => {}).then(async () => {
        if (this._swarm) await this._swarm.destroy()
        if (this._host) await wrapNative(() => this._host.close())
      })
    }
    return this._closing
  }
}

module.exports = ReplicationHost
