'use strict'
// ReplicationHost: serves call logs and archives to any hypercore@10 peer over TCP.
const native = require('./native')
const { wrapNative, BadArgumentError } = require('./errors')

class ReplicationHost {
  constructor (h) { this._host = h }

  /** Listen on `host:port` (default 127.0.0.1, an OS-chosen port). */
  static async listen ({ host = '127.0.0.1', port = 0, _corruptBlocks = false } = {}) {
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new BadArgumentError('port must be 0..65535')
    return new ReplicationHost(await wrapNative(() => native.startHost(`${host}:${port}`, !!_corruptBlocks)))
  }

  get port () { return this._host.port }
  get address () { return this._host.address }

  /** Serve an open CallLog or DatArchive (both of its logs). */
  async add (source) {
    if (source && typeof source._live === 'function' && source.constructor.name === 'CallLog') {
      wrapNative(() => this._host.addLog(source._live()))
    } else if (source && typeof source._open === 'function') {
      const drive = await source._open()
      wrapNative(() => this._host.addDrive(drive))
    } else {
      throw new BadArgumentError('add() takes a CallLog or a DatArchive')
    }
    return this
  }

  /** Stop listening and end every session. Idempotent. */
  close () { return wrapNative(() => this._host.close()) }
}

module.exports = ReplicationHost
