'use strict'
// VMFactory: a VM whose script provisions other VMs (System.vms). Each provisioned VM lives in `<factory dir>/<id>`
// with its own call log and files archive, and is served at `/<id>` on the factory's RPC server.
//
// A registry file (`<factory dir>/vms.json`, replaced atomically) says which VMs exist, so a host restarted on the
// same directory brings back every VM it had provisioned and not shut down. A shut-down VM's directory is kept: its
// log and archive are the audit trail of what it did, and `libvms verify <dir>/<id>` still works on them.
const fs = require('node:fs')
const path = require('node:path')
const nodeVm = require('node:vm')

const VM = require('./vm')
const { resolveLimits } = require('./sandbox')
const CallLog = require('./call-log')
const createDebug = require('./debug')
const { BadArgumentError, CapacityError, ClosedError } = require('./errors')

const debug = createDebug('libvms:factory')
const REGISTRY_FILE = 'vms.json'
const DEFAULT_MAX_VMS = 100

class VMFactory extends VM {
  /**
   * `limits`: the factory script's own; `vmLimits`: the host's policy for provisioned VMs (the most a VM may get;
   * defaults as for any VM). A provision may ask for less, never for more. `auth`: the factory's mode, and its VMs'
   * by default.
   */
  constructor (code, { maxVMs = DEFAULT_MAX_VMS, limits, vmLimits, auth, deterministic } = {}) {
    super(code, { limits, auth, deterministic })
    if (!Number.isSafeInteger(maxVMs) || maxVMs < 0) throw new BadArgumentError('maxVMs must be a non-negative integer')
    this.maxVMs = maxVMs
    this.vmLimits = resolveLimits(vmLimits)
    /** The live VMs, by id. */
    this.VMs = {}
    this._rpcServer = null
    this._rpcUrl = null // the factory's public URL when the host knows it (provisionVM adds rpcUrl)
    this._registry = null // { vms: { [id]: { state, title, callLogUrl, filesArchiveUrl, ... } } }
    this._inFlight = new Set() // provisions under way: they count against maxVMs and are awaited by close()
    this._shutting = false
    // Only factory scripts get System.vms. The script receives plain data, never the VM objects.
    this.addAPI('vms', {
      provisionVM: (opts) => this.provisionVM(opts),
      shutdownVM: (id) => this.shutdownVM(id)
    })
  }

  get numVMs () { return Object.keys(this.VMs).length }

  /**
   * Deploy the factory (see VM#deploy), then bring back the VMs it had provisioned before a restart. Provisions that
   * never completed (a crash mid-way: the caller never got an answer) are removed first.
   */
  async deploy (opts = {}) {
    if (typeof opts.dir === 'string' && opts.dir) {
      this._registry = loadRegistry(opts.dir)
      this._dropUnfinished(opts.dir)
    }
    await super.deploy(opts)
    try {
      await this._restoreVMs()
    } catch (e) {
      await this.close()
      throw e
    }
    return this
  }

  /**
   * Serve provisioned VMs on `server` at `/<id>` (the ones already running, and every later one). `url` is the
   * factory's public URL (e.g. ws://host:5555/); with it, provisionVM also returns each VM's `rpcUrl` (`url` + id).
   */
  setRPCServer (server, { url } = {}) {
    if (url !== undefined && url !== null) {
      if (typeof url !== 'string' || !/^wss?:\/\//.test(url)) throw new BadArgumentError('setRPCServer: url must be a ws:// or wss:// URL')
      this._rpcUrl = url.endsWith('/') ? url : url + '/'
    }
    this._rpcServer = server
    for (const [id, vm] of Object.entries(this.VMs)) server.mount('/' + id, vm)
  }

  getVM (id) {
    return Object.hasOwn(this.VMs, id) ? this.VMs[id] : undefined
  }

  /** Deploy a new VM running `code` in `<factory dir>/<id>`. Nothing is left behind if it fails. */
  /** `auth`: 'debug' or 'signed' for the new VM (default: the factory's own mode). */
  async provisionVM ({ code, title, limits, auth = this.auth } = {}) {
    this._assertOpen()
    checkCode(code)
    if (title !== undefined && typeof title !== 'string') throw new BadArgumentError('VM title must be a string')
    const granted = this._grant(limits)
    if (this.numVMs + this._inFlight.size >= this.maxVMs) throw new CapacityError('This host is at maximum capacity')

    if (auth !== 'debug' && auth !== 'signed') throw new BadArgumentError("auth must be 'debug' or 'signed'")
    const job = this._provision(code, title, granted, auth)
    this._inFlight.add(job)
    try {
      return await job
    } finally {
      this._inFlight.delete(job)
    }
  }

  /** The limits a VM gets: what it asked for, within the host's policy. */
  _grant (asked) {
    const wanted = resolveLimits(asked)
    const granted = {}
    for (const k of Object.keys(this.vmLimits)) granted[k] = Math.min(wanted[k], this.vmLimits[k])
    return granted
  }

  async _provision (code, title, limits, auth) {
    const vm = new VM(code, { limits, auth })
    const id = vm.id
    const dir = this._vmDir(id)
    // Registered before anything is created, so a crash mid-way is cleaned up on the next deploy.
    this._setEntry(id, { state: 'provisioning', title, limits, ...(auth === 'signed' ? { auth } : {}), createdAt: new Date().toISOString() })
    try {
      await vm.deploy({ dir, title })
    } catch (e) {
      await vm.close().catch(() => {})
      fs.rmSync(dir, { recursive: true, force: true })
      this._deleteEntry(id)
      throw e
    }
    const info = { id, callLogUrl: vm.callLog.url, filesArchiveUrl: vm.filesArchive.url }
    // Without a known public URL the result stays exactly as libvms 2 had it.
    if (this._rpcUrl) info.rpcUrl = this._rpcUrl + id
    this._setEntry(id, { ...this._registry.vms[id], state: 'live', callLogUrl: info.callLogUrl, filesArchiveUrl: info.filesArchiveUrl })
    this.VMs[id] = vm
    if (this._rpcServer) this._rpcServer.mount('/' + id, vm)
    debug('provisioned %s in %s', id, dir)
    return info
  }

  /** Stop serving VM `id` (closing its connections) and close it. Its directory stays, as the audit trail. */
  async shutdownVM (id) {
    const vm = this.getVM(id)
    if (!vm) throw new BadArgumentError(`No VM with id ${id}`)
    delete this.VMs[id]
    if (this._rpcServer) await this._rpcServer.unmount('/' + id)
    await vm.close()
    this._setEntry(id, { ...this._registry.vms[id], state: 'shutdown', shutdownAt: new Date().toISOString() })
    debug('shut down %s', id)
  }

  /** Close every provisioned VM (after provisions under way), then the factory itself. Idempotent. */
  close () {
    if (!this._factoryClosing) {
      this._shutting = true
      this._factoryClosing = (async () => {
        await Promise.allSettled([...this._inFlight])
        const vms = Object.entries(this.VMs)
        this.VMs = {}
        for (const [id, vm] of vms) {
          if (this._rpcServer) await Promise.resolve(this._rpcServer.unmount('/' + id)).catch(() => {})
          await vm.close()
        }
        await super.close()
      })()
    }
    return this._factoryClosing
  }

  async _restoreVMs () {
    for (const [id, entry] of Object.entries(this._registry.vms)) {
      if (entry.state !== 'live' || this.VMs[id]) continue
      const dir = this._vmDir(id)
      let vm
      try {
        vm = new VM(await latestCode(dir), { limits: this._grant(entry.limits), auth: entry.auth === 'signed' ? 'signed' : 'debug' })
        vm.id = id
        // A brought-back VM whose init throws still serves; the factory passes the warning on.
        vm.on('warning', (w) => {
          w.message = `VM ${id}: ${w.message}`
          this.emit('warning', w)
        })
        await vm.deploy({ dir, title: entry.title, url: entry.filesArchiveUrl })
      } catch (e) {
        if (vm) await vm.close().catch(() => {})
        e.message = `cannot bring back VM ${id} (${dir}): ${e.message}`
        throw e
      }
      this.VMs[id] = vm
      if (this._rpcServer) this._rpcServer.mount('/' + id, vm)
      debug('brought back %s', id)
    }
  }

  _dropUnfinished (dir) {
    let dropped = 0
    for (const [id, entry] of Object.entries(this._registry.vms)) {
      if (entry.state !== 'provisioning') continue
      debug('removing unfinished provision %s', id)
      fs.rmSync(path.join(dir, id), { recursive: true, force: true })
      delete this._registry.vms[id]
      dropped++
    }
    if (dropped) saveRegistry(dir, this._registry)
  }

  _assertOpen () {
    if (this._shutting || !this.callLog) throw new ClosedError('VM factory is not deployed or is closed')
  }

  _vmDir (id) { return path.join(this.dir, id) }

  _setEntry (id, entry) {
    this._registry.vms[id] = entry
    saveRegistry(this.dir, this._registry)
  }

  _deleteEntry (id) {
    delete this._registry.vms[id]
    saveRegistry(this.dir, this._registry)
  }
}

/** Refuse code that is not a string or does not compile, before anything is created for it. */
function checkCode (code) {
  if (typeof code !== 'string') throw new BadArgumentError('VM code must be a string')
  try {
    new nodeVm.Script(code, { filename: 'vm-script.js' }) // eslint-disable-line no-new
  } catch (e) {
    throw new BadArgumentError(`VM code does not compile: ${e.message}`)
  }
}

/** The code a VM directory runs now: its init entry's, or that of its last restart with new code. */
async function latestCode (dir) {
  const log = await CallLog.open(path.join(dir, 'call-log'))
  try {
    let code = null
    for await (const entry of log.entries()) {
      if (entry && (entry.type === 'init' || entry.type === 'restart') && typeof entry.code === 'string') code = entry.code
    }
    if (code === null) throw new BadArgumentError('Malformed call log')
    return code
  } finally {
    await log.close()
  }
}

function loadRegistry (dir) {
  let text
  try {
    text = fs.readFileSync(path.join(dir, REGISTRY_FILE), 'utf8')
  } catch (e) {
    if (e.code === 'ENOENT') return { vms: {} }
    throw e
  }
  let reg
  try {
    reg = JSON.parse(text)
  } catch (e) {
    throw new BadArgumentError(`${path.join(dir, REGISTRY_FILE)} is not valid JSON`)
  }
  if (!reg || typeof reg.vms !== 'object' || reg.vms === null) {
    throw new BadArgumentError(`${path.join(dir, REGISTRY_FILE)} is not a VM registry`)
  }
  return reg
}

/** Replace the registry atomically and durably: write a temp file, fsync it, rename it over, fsync the folder. */
function saveRegistry (dir, reg) {
  const file = path.join(dir, REGISTRY_FILE)
  const tmp = file + '.tmp'
  const fd = fs.openSync(tmp, 'w')
  try {
    fs.writeSync(fd, JSON.stringify(reg, null, 2) + '\n')
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(tmp, file)
  try {
    const dfd = fs.openSync(dir, 'r')
    try { fs.fsyncSync(dfd) } finally { fs.closeSync(dfd) }
  } catch (e) {
    debug('cannot fsync %s: %s', dir, e.message) // not supported on every platform; the rename is still atomic
  }
}

module.exports = VMFactory
