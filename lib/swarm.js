'use strict'
// Discovery on the Hyperswarm DHT (npm hyperswarm@4). The swarm only finds peers and encrypts: every
// connection it hands over is fed to a Rust replication session (a NativeLink), which speaks the
// Hypercore protocol on the decrypted messages. JS replication never runs on these streams.
//
// Joining is explicit: `swarm: true` joins the public DHT, `bootstrap` (or LIBVMS_BOOTSTRAP) a private one.
const createDebug = require('./debug')
const { BadArgumentError } = require('./errors')
const { addSwarmPeer, swarmPeers } = require('./peers')

const debug = createDebug('libvms:swarm')
const HOST_RE = /^(\[[0-9a-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/i

function parseNode (node) {
  if (node && typeof node === 'object' && typeof node.host === 'string' && Number.isInteger(node.port)) {
    if (node.port < 1 || node.port > 65535) throw new BadArgumentError(`bootstrap port out of range: ${node.port}`)
    return { host: node.host, port: node.port }
  }
  const m = typeof node === 'string' ? HOST_RE.exec(node.trim()) : null
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new BadArgumentError(`bootstrap node must be "host:port" or {host, port}, got ${JSON.stringify(node)}`)
  }
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) }
}

/** `bootstrap` as given (array of "host:port" / {host, port}, or a comma-separated string) -> [{host, port}]. */
function parseBootstrap (list) {
  const items = typeof list === 'string' ? list.split(',').map(s => s.trim()).filter(Boolean) : list
  if (!Array.isArray(items) || items.length === 0) throw new BadArgumentError('bootstrap must list at least one "host:port"')
  return items.map(parseNode)
}

/**
 * Which DHT to join, from the options and the environment: null (none: nothing touches the network),
 * { bootstrap: null } for the public DHT, or { bootstrap: [{host, port}] } for a private one.
 */
function swarmConfig ({ swarm, bootstrap } = {}, env = process.env) {
  if (bootstrap !== undefined && bootstrap !== null) return { bootstrap: parseBootstrap(bootstrap) }
  if (swarm && typeof swarm === 'object') return swarmConfig({ swarm: true, ...swarm }, env)
  if (env.LIBVMS_BOOTSTRAP) return { bootstrap: parseBootstrap(env.LIBVMS_BOOTSTRAP) }
  if (swarm === true) return { bootstrap: null }
  if (swarm !== undefined && swarm !== false && swarm !== null) throw new BadArgumentError('swarm must be true, false or {bootstrap}')
  return null
}

const isLoopback = (host) => host === 'localhost' || host === '::1' || /^127\./.test(host)

/** A Hyperswarm node; on a loopback DHT it binds and announces on loopback (else peers get an unreachable address). */
function createSwarm (config) {
  // Loaded on first use: processes that never join a DHT never load its native UDP module.
  const Hyperswarm = require('hyperswarm')
  const HyperDHT = require('hyperdht')
  const bootstrap = config.bootstrap
  const opts = bootstrap ? { bootstrap } : {}
  if (bootstrap && bootstrap.every(b => isLoopback(b.host))) opts.host = '127.0.0.1'
  return new Hyperswarm({ dht: new HyperDHT(opts) })
}

/**
 * Run the replication session `link` (a NativeLink) over `conn` (a NoiseSecretStream): decrypted messages go in,
 * the session's messages are written out in order, waiting for 'drain' when the stream asks to; both directions
 * pause rather than buffer without bound. When the session ends, the connection is closed.
 */
function attach (conn, link) {
  let ended = false
  const end = (err) => {
    if (ended) return
    ended = true
    link.end(err ? String(err.message || err) : null)
  }
  conn.on('data', (msg) => {
    if (ended) return
    if (!link.push(msg)) {
      conn.pause()
      link.drained().then(() => { if (!conn.destroyed) conn.resume() }, () => {})
    }
  })
  conn.on('error', (e) => { debug(`connection error: ${e.message}`); end(e) })
  conn.on('end', () => end())
  conn.on('close', () => end())
  const writable = () => new Promise((resolve) => {
    const done = () => { conn.off('drain', done); conn.off('close', done); resolve() }
    conn.on('drain', done)
    conn.on('close', done)
  })
  ;(async () => {
    let batch
    while ((batch = await link.next()) !== null) {
      for (const msg of batch) {
        if (conn.destroyed) break
        if (!conn.write(msg)) await writable()
      }
    }
    conn.destroy()
  })().catch((e) => { debug(`session writer: ${e.message}`); conn.destroy() })
}

/** Join `swarm` (a Hyperswarm) on each discovery key; resolves once announced / looked up. */
async function joinAll (swarm, discoveryKeys, { server, client }) {
  await Promise.all(discoveryKeys.map(dk => swarm.join(dk, { server, client }).flushed()))
}

/**
 * Look `discoveryKey` up for a fetch: every connection found becomes a link of `fetcher` (a NativeSwarmFetch).
 * The lookup is repeated (1 s, 2 s, 4 s ...) until a peer is connected, as a host may announce after we looked.
 * Returns { swarm, destroy }.
 */
function lookup (config, discoveryKey, fetcher) {
  const swarm = createSwarm(config)
  let connected = false
  let timer = null
  swarm.on('connection', (conn) => {
    connected = true
    addSwarmPeer(conn.remotePublicKey, config) // later fetches ask it again (lib/peers.js)
    attach(conn, fetcher.link(conn.isInitiator, conn.handshakeHash, conn.remotePublicKey))
  })
  // Peers found before on this DHT are asked directly too: they may serve this key without announcing it (yet).
  for (const publicKey of swarmPeers(config)) swarm.joinPeer(publicKey)
  const discovery = swarm.join(discoveryKey, { server: false, client: true })
  let wait = 1000
  const retry = () => {
    timer = setTimeout(() => {
      if (connected || swarm.destroyed) return
      discovery.refresh({ server: false, client: true }).catch(() => {})
      wait = Math.min(wait * 2, 30000)
      retry()
    }, wait)
    timer.unref()
  }
  retry()
  return {
    swarm,
    async destroy () {
      clearTimeout(timer)
      await swarm.destroy()
    }
  }
}

module.exports = { swarmConfig, parseBootstrap, createSwarm, attach, joinAll, lookup }
