'use strict'
// RPCServer: serves mounted VMs over WebSocket JSON-RPC 2.0, wire-compatible with libvms 2 / nodevms-client.
// Transport, validation and each VM's FIFO queue (bounded at 1000) live in Rust (crates/rpc); a call reaches the
// VM through `vm.executeCall`, which logs it.
const { types } = require('node:util')

const native = require('./native')
const ReplicationHost = require('./host')
const debug = require('./debug')('libvms:rpc')
const { wrapNative, BadArgumentError } = require('./errors')

const DEFAULT_PORT = 5555

class RPCServer {
  /**
   * @param {object} [opts] maxMessageSize, maxConnections, maxQueue, maxOutgoingSize (bytes / counts);
   *   pingInterval, idleTimeout (0 = never), handshakeTimeout, closeTimeout (ms);
   *   replication: a ReplicationHost to serve the VMs' logs and archives through, or false for none. By default
   *   `listen` starts one on the same interface and an OS-chosen port, as libvms 2 served them on Dat.
   */
  constructor (opts = {}) {
    const { replication, ...limits } = opts || {}
    this._native = wrapNative(() => new native.NativeRpcServer(limits))
    this._closing = null
    this._replication = null
    this._ownReplication = replication === undefined // started (and closed) by this server
    this._mounted = new Map() // path -> vm, so `listen` can name the replication port in earlier mounts
    if (replication) this.setReplicationHost(replication)
  }

  /**
   * Serve the logs of every VM mounted from now on through `host` (a ReplicationHost), and name its port in the
   * handshake result (`replicationPort`), so auditors connected over RPC can fetch them.
   */
  setReplicationHost (host) {
    if (!host || typeof host.add !== 'function' || !Number.isInteger(host.port)) {
      throw new BadArgumentError('setReplicationHost needs a listening ReplicationHost')
    }
    this._replication = host
    this._ownReplication = false
  }

  /** Serve `vm` at `path` (e.g. '/vm1'), before or after `listen`. The VM must be deployed. */
  mount (path, vm) {
    if (typeof path !== 'string') throw new BadArgumentError('mount path must be a string')
    if (!vm || !vm.exports || !vm.callLog || !vm.filesArchive) throw new BadArgumentError('mount needs a deployed VM')
    this._mount(path, vm)
    this._mounted.set(path, vm)
  }

  _mount (path, vm) {
    const methods = exportedMethods(vm.exports)
    const info = { callLogUrl: vm.callLog.url, filesArchiveUrl: vm.filesArchive.url, ...(vm.rpcInfo || {}) }
    const host = this._replication
    if (host) {
      info.replicationPort = host.port
      // Both are open (the VM is deployed), so adding them does not wait on anything.
      // The archive only as far as the durable log accounts for: a follower never sees a write a crash rolls back.
      for (const [source, opts] of [[vm.callLog], [vm.filesArchive, { log: vm.callLog }]]) host.add(source, opts).catch((e) => debug(`not replicating ${path}: ${e.message}`))
    }
    const reply = (ticket, outcomes) => this._native.reply(ticket, outcomes)
    // A VM's call entries are built and committed in Rust, and its replies wait there for them to be durable;
    // anything else replies when it is done.
    const log = typeof vm._start === 'function' ? vm.callLog._core : undefined
    if (log) vm.callLog._commitOffThread()
    const commit = log ? (ticket, slot, ...parts) => this._native.commitCall(ticket, slot, ...parts) : undefined
    // A signed VM's calls are checked in Rust against its log's key and each caller's last sequence number there.
    const signed = vm.auth === 'signed'
    wrapNative(() => this._native.mount(path, methods, JSON.stringify(info), backend(vm, reply, commit), log, signed))
  }

  /** Start this server's own replication host on `hosts` (the RPC interfaces), and name it in earlier mounts. */
  async _startReplication (hosts) {
    for (let i = 0; !this._replication; i++) {
      try {
        this._replication = await ReplicationHost.listen({ host: hosts[i], port: 0 })
      } catch (e) {
        if (i + 1 >= hosts.length) throw e
      }
    }
    // Nothing is listening yet, so no client has seen the handshake without the port.
    for (const [path, vm] of this._mounted) {
      if (!vm.callLog || !vm.filesArchive) continue // closed since
      this._native.unmount(path)
      this._mount(path, vm)
    }
  }

  /** Stop serving `path`: its connections close; calls already queued still run. Returns whether it was mounted. */
  unmount (path) {
    this._mounted.delete(String(path))
    return wrapNative(() => this._native.unmount(String(path)))
  }

  /** `listen(port)` or `listen({port, host})`; port 0 lets the OS choose. Resolves once bound. */
  async listen (opts) {
    const { port = DEFAULT_PORT, host } = typeof opts === 'object' && opts !== null ? opts : { port: opts }
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new BadArgumentError('port must be an integer 0..65535')
    // As the original (a Node http server without host): every interface, IPv6 and IPv4 when available.
    const hosts = host === undefined ? ['::', '0.0.0.0'] : [host]
    const starting = this._ownReplication && !this._replication && !this._closing
    if (starting) await this._startReplication(hosts)
    for (let i = 0; ; i++) {
      try {
        await wrapNative(() => this._native.listen(hosts[i], port))
        break
      } catch (e) {
        if (i + 1 >= hosts.length || e.code !== 'IO_ERROR') {
          // Not serving after all (e.g. the port is taken): neither is the replication host started for it.
          if (starting) await this._replication.close().catch(() => {})
          if (starting) this._replication = null
          throw e
        }
      }
    }
    // A listening server keeps Node alive until close(), like net.Server.
    this._native.untilClosed().catch(() => {})
    return this.address()
  }

  /** `{port, address}` once listening, else null. */
  address () {
    const port = this._native.port
    return port == null ? null : { port, address: this._native.address }
  }

  get port () { return this._native.port ?? null }
  get connections () { return this._native.connections }
  get mounts () { return this._native.mounts() }
  /** Calls waiting at `path` (not counting the one running), or null. */
  queued (path) { return this._native.queued(path) ?? null }

  /** Close every connection; resolves once all are gone and every accepted call has finished. Idempotent. */
  close () {
    if (!this._closing) {
      const own = this._ownReplication ? this._replication : null
      this._closing = wrapNative(() => this._native.close()).finally(() => own && own.close())
    }
    return this._closing
  }
}

/** What may be called remotely: the script's own enumerable functions, in definition order, never `init`. */
function exportedMethods (exports) {
  return Object.keys(exports).filter((k) => k !== 'init' && typeof exports[k] === 'function')
}

/**
 * The function Rust calls with the calls queued at a mount (`[[methodName, argsJSON, userId], ...]`, in arrival
 * order; a signed call's `auth` member is added to its entry in Rust). Each is handed to the VM's serial queue at
 * once, so calls that arrive together share one log commit; as each runs, `commit(ticket, slot, ...)` gives Rust its
 * outcome for the log entry, which Rust builds and commits. Once all have run, `reply(ticket, outcomes)` gives Rust
 * every ending, as JSON text: `["v", result]`, `["u"]` (undefined), `["t", name, message]` (an Error) or
 * `["x", value]` (anything else thrown); Rust sends them once their entries are durable.
 */
function backend (vm, reply, commit) {
  return (ticket, callsJson) => {
    const calls = JSON.parse(callsJson)
    const endings = calls.map(([methodName, argsJSON, userId], i) => {
      let running
      try {
        const call = { methodName, argsJSON, userId }
        if (commit) call.commit = (...parts) => commit(ticket, i, ...parts)
        running = start(vm, call)
      } catch (e) {
        return thrown(e)
      }
      return running.then((outcome) => {
        if (outcome.threw) return thrown(outcome.value)
        // What rpc-websockets did: JSON.stringify of the reply, so `undefined` (and functions) drop the key.
        return outcome.resJSON === undefined ? '["u"]' : '["v",' + outcome.resJSON + ']'
      }).catch(thrown)
    })
    Promise.all(endings).then((list) => reply(ticket, '[' + list.join(',') + ']'))
  }
}

/** Start a call on a VM, or run it on anything else mounted that has `executeCall`. */
function start (vm, call) {
  if (typeof vm._start === 'function') return vm._start(call)
  const { methodName, argsJSON, userId } = call
  return vm.executeCall({ methodName, args: JSON.parse(argsJSON), userId }).then(
    (value) => ({ threw: false, value, resJSON: JSON.stringify(value) }),
    (value) => ({ threw: true, value }))
}

function thrown (e) {
  // Script errors come from another realm (node:vm), so `instanceof Error` alone would miss them.
  if (e instanceof Error || types.isNativeError(e)) return JSON.stringify(['t', String(e.name), String(e.message)])
  let json
  try { json = JSON.stringify(e) } catch (_) {}
  return '["x",' + (json === undefined ? 'null' : json) + ']'
}

module.exports = RPCServer
