'use strict'
// Deploy a script (as a VM or a VM factory), serve it over RPC at `/`, and stop cleanly on SIGINT/SIGTERM:
// the server first (no new calls), then the VM (running calls finish, the log and archive are flushed).
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const VM = require('../vm')
const VMFactory = require('../vm-factory')
const createDebug = require('../debug')
const { intOption } = require('./args')
const { SWARM_OPTIONS, swarmOptions, describeSwarm } = require('./swarm-options')
const RPCServer = require('../rpc-server')
const ReplicationHost = require('../host')
const { UsageError } = require('../errors')
const { checkScript, checkDataDir, removeFailedDir, explainDeployError, explainListenError } = require('./serve-checks')
const { CODES } = require('./interrupt')

const debug = createDebug('libvms:serve')
const pkg = require('../../package.json')

// Options shared by `exec` and `factory`, including NodeVMS 1.x's (-p, -d, --utp).
const SERVE_OPTIONS = {
  port: { type: 'string', short: 'p', arg: 'PORT', help: 'port to listen on (default 5555; 0 = any free port)' },
  host: { type: 'string', arg: 'HOST', help: 'address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)' },
  'replication-port': { type: 'string', arg: 'PORT', help: 'TCP port serving the call log and files archive to auditors over the Hypercore protocol (default: any free port; named in the RPC handshake)' },
  dir: { type: 'string', arg: 'DIR', help: 'data directory (default ./<script name>.libvms)' },
  title: { type: 'string', arg: 'TITLE', help: 'title of the VM and its files archive (default: the script\'s file name)' },
  'call-timeout': { type: 'string', arg: 'MS', help: 'stop a call (and restart the script) after MS milliseconds (default 10000); for a factory, the most its VMs get' },
  'memory-mb': { type: 'string', arg: 'MB', help: 'stop a call (and restart the script) past MB megabytes of memory (default 256); for a factory, the most its VMs get' },
  debug: { type: 'boolean', short: 'd', help: 'debug mode (the default): callers name themselves with ?user=' },
  signed: { type: 'boolean', help: 'production mode: every call must be signed (libvms call --key FILE); callers are their public keys' },
  utp: { type: 'boolean' }, // NodeVMS 1.x: peer discovery; accepted, no effect yet
  'no-utp': { type: 'boolean' },
  version: { type: 'boolean', short: 'v' },
  ...SWARM_OPTIONS
}

/** The data directory for `scriptPath` when --dir is not given. */
function defaultDir (scriptPath) {
  return path.resolve(path.basename(scriptPath).replace(/\.[cm]?js$/, '') + '.libvms')
}

async function serve ({ positionals, values, io }, { factory = false } = {}) {
  const scriptPath = positionals[0]
  if (!scriptPath) throw new UsageError(`a script is required: libvms ${factory ? 'factory' : 'exec'} SCRIPT`)
  if (positionals.length > 1) throw new UsageError(`unexpected argument: ${positionals[1]}`)
  let code
  try {
    code = fs.readFileSync(scriptPath, 'utf8')
  } catch (e) {
    throw new UsageError(`cannot read ${scriptPath}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`)
  }
  const port = intOption(values, 'port', 5555)
  if (port > 65535) throw new UsageError('--port must be at most 65535')
  const host = values.host || '127.0.0.1'
  const dir = values.dir ? path.resolve(values.dir) : defaultDir(scriptPath)
  const title = values.title || path.basename(scriptPath)
  const maxVMs = factory ? intOption(values, 'max-vms', 100) : undefined
  // Refuse what cannot work before anything is created: a script that does not compile, a folder that is not a VM's.
  checkScript(code, scriptPath)
  const fresh = checkDataDir(dir)

  // Signals are caught from the start, so a Ctrl+C during startup still shuts down cleanly.
  const stop = stopSignal(io)

  const replicationPort = intOption(values, 'replication-port', 0)
  const swarm = swarmOptions(values)
  const auth = values.signed ? 'signed' : 'debug'
  const limits = {}
  if (values['call-timeout'] !== undefined) limits.callTimeoutMs = intOption(values, 'call-timeout', 0)
  if (values['memory-mb'] !== undefined) limits.memoryMb = intOption(values, 'memory-mb', 0)
  const vm = factory ? new VMFactory(code, { maxVMs, vmLimits: limits, auth }) : new VM(code, { limits, auth })
  // A restart whose init throws still serves (the error is in the log): one line says so.
  vm.on('warning', (w) => io.err.write(`libvms: warning: ${w.message}\n`))
  let server = null
  let replication = null
  let deployed = false
  try {
    // Ports first: one in use must not leave a new VM directory behind.
    replication = await ReplicationHost.listen({ host, port: replicationPort, ...swarm }).catch((e) => { throw explainListenError(e, host, replicationPort, '--replication-port') })
    server = new RPCServer({ replication })
    await server.listen({ port, host }).catch((e) => { throw explainListenError(e, host, port, '--port') })
    await vm.deploy({ dir, title }).catch((e) => { throw explainDeployError(e, { vm, dir, scriptPath, fresh }) })
    deployed = true
    // Auditors fetch the log and the archive from here; the RPC handshake tells them the port.
    server.mount('/', vm)
    if (factory) vm.setRPCServer(server, { url: publicUrl(host, server.port) })
    await replication.announced() // with --swarm/--bootstrap: findable once the URLs are printed
  } catch (e) {
    if (server) await server.close().catch(() => {})
    if (replication) await replication.close().catch(() => {})
    await vm.close().catch(() => {})
    // A first run that failed leaves nothing behind: a half-made VM directory would not verify.
    if (fresh && !deployed) removeFailedDir(dir, fresh)
    stop.dispose()
    throw e
  }
  const bound = server.port
  const shownHost = host.includes(':') ? `[${host}]` : host
  io.out.write([
    `libvms ${pkg.version}`,
    `Serving ${path.basename(scriptPath)}${factory ? ' (VM factory)' : ''} at ws://${shownHost}:${bound}/`,
    `Data directory ${dir}`,
    '',
    `Files archive ${vm.filesArchive.url}`,
    `Call log      ${vm.callLog.url}`,
    `Replication   ${shownHost}:${replication.port} (Hypercore protocol)`,
    replication.swarm ? `Discovery     ${describeSwarm(values)}` : null,
    factory ? `Provisioned VMs are served at ws://${shownHost}:${bound}/<id> (${vm.numVMs} running, at most ${maxVMs})` : null,
    '',
    'Ctrl+C to stop',
    ''
  ].filter((l) => l !== null).join('\n'))

  const signal = await stop.promise
  io.out.write(`\n${signal}: stopping...\n`)
  debug('closing server')
  // Running calls get a short grace; then scripts still running (a spin) are stopped, so shutdown never waits for
  // a call's full time limit. Such a call is logged as stopped by the shutdown.
  const grace = setTimeout(() => stopScripts(vm), SHUTDOWN_GRACE_MS)
  await server.close()
  clearTimeout(grace)
  debug('closing replication host')
  await replication.close()
  debug('closing VM')
  await vm.close()
  stop.dispose()
  io.out.write('Stopped.\n')
  // As a shell expects of a program stopped by a signal (and as npx reports it): 128 + the signal's number.
  return CODES[signal] || 130
}

/** The URL clients use to reach this host (for a factory's provisionVM `rpcUrl`). */
function publicUrl (host, port) {
  const name = host === '0.0.0.0' || host === '::' ? os.hostname() : host
  return `ws://${name.includes(':') ? `[${name}]` : name}:${port}/`
}

const SHUTDOWN_GRACE_MS = 2000

function stopScripts (vm) {
  debug('stopping scripts still running')
  for (const v of [vm, ...Object.values(vm.VMs || {})]) v.stopScript('shutdown')
}

/** Resolves with the first SIGINT/SIGTERM; a second one while stopping exits at once. */
function stopSignal (io) {
  let resolve
  const promise = new Promise((r) => { resolve = r })
  let count = 0
  const on = (signal) => {
    count++
    if (count === 1) return resolve(signal)
    io.err.write(`${signal} again: exiting without waiting (acknowledged calls are already durable)\n`)
    process.exit(CODES[signal] || 130)
  }
  process.on('SIGINT', on)
  process.on('SIGTERM', on)
  return {
    promise,
    dispose () {
      process.off('SIGINT', on)
      process.off('SIGTERM', on)
    }
  }
}

module.exports = { serve, SERVE_OPTIONS, defaultDir }
