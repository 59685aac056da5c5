'use strict'
// ReplicationHost: serves call logs and archives to any hypercore@10/11 peer over TCP and, when asked, to peers
// that find them on the Hyperswarm DHT (lib/swarm.js).
const native = require('./native')
const { wrapNative, BadArgumentError } = require('./errors')
const { swarmConfig, createSwarm, attach, joinAll } = require('./swarm')

class ReplicationHost {
  constructor (h, swarm = null) {
    this._host = h
    this._swarm = swarm
    this._announcing = new Set()
    if (swarm) {
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
  }

  /**
   * Listen on `host:port` (default 127.0.0.1, an OS-chosen port). `swarm: true` also announces every served log
   * and archive on the public Hyperswarm DHT; `bootstrap` (or LIBVMS_BOOTSTRAP) on a private one instead.
   */
  static async listen ({ host = '127.0.0.1', port = 0, swarm, bootstrap, _corruptBlocks = false } = {}) {
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new BadArgumentError('port must be 0..65535')
    const config = swarmConfig({ swarm, bootstrap })
    const h = await wrapNative(() => native.startHost(`${host}:${port}`, !!_corruptBlocks))
    return new ReplicationHost(h, config ? createSwarm(config) : null)
  }

  get port () { return this._host.port }
  get address () { return this._host.address }
  /** Whether this host announces on a Hyperswarm DHT. */
  get swarm () { return !!this._swarm }

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
  async close () {
    if (this._swarm) await this._swarm.destroy()
    return wrapNative(() => this._host.close())
  }
}

module.exports = ReplicationHost
