'use strict'
// Where to find peers for replication: an explicit list, the LIBVMS_PEERS environment variable
// (comma-separated host:port), and a registry other modules add to (e.g. endpoints learned from RPC
// handshakes). Every source yields `host:port` strings; duplicates are dropped. Peers found on a Hyperswarm DHT
// join the same registry by their public key (they have no TCP address), with the DHT they were found on: a later
// fetch that knows no other peer asks them again, directly, on that DHT.
const { BadArgumentError, ConnectionError } = require('./errors')

const registry = new Set()
/** Swarm peers: public key (hex) -> the DHT config ({bootstrap}) they were found on. Newest last. */
const swarmRegistry = new Map()
const ADDR_RE = /^(\[[0-9a-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/i

function check (addr) {
  const m = typeof addr === 'string' ? ADDR_RE.exec(addr.trim()) : null
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new BadArgumentError(`peer must be "host:port", got ${JSON.stringify(addr)}`)
  return addr.trim()
}

function fromEnv (env = process.env) {
  return (env.LIBVMS_PEERS || '').split(',').map(s => s.trim()).filter(Boolean).map(check)
}

/** Remember a peer for every later fetch (returns a function that forgets it). */
function addPeer (addr) {
  const a = check(addr)
  registry.add(a)
  return () => registry.delete(a)
}

/** Remember a peer found on the DHT `config` (see lib/swarm.js swarmConfig) by its public key. */
function addSwarmPeer (publicKey, config) {
  const hex = Buffer.from(publicKey).toString('hex')
  swarmRegistry.delete(hex)
  swarmRegistry.set(hex, config)
  return () => swarmRegistry.delete(hex)
}

const sameDht = (a, b) => JSON.stringify(a.bootstrap) === JSON.stringify(b.bootstrap)

/** Public keys (Buffers) of the peers found on the DHT `config`. */
function swarmPeers (config) {
  return [...swarmRegistry].filter(([, c]) => sameDht(c, config)).map(([hex]) => Buffer.from(hex, 'hex'))
}

/** The DHT of the newest swarm peer, or null: a fetch with no other peer and no DHT option asks there. */
function knownSwarm () {
  let last = null
  for (const c of swarmRegistry.values()) last = c
  return last
}

/** The peers to try: explicit ones first, then LIBVMS_PEERS, then the registry. */
function resolvePeers (explicit) {
  if (explicit !== undefined && !Array.isArray(explicit)) throw new BadArgumentError('peers must be an array of "host:port"')
  const out = new Set((explicit || []).map(check))
  for (const p of fromEnv()) out.add(p)
  for (const p of registry) out.add(p)
  return [...out]
}

/** A fetch with no peer to ask fails at once (not after its timeout), saying how to add one. */
function noPeerError (url) {
  return new ConnectionError(`no peer to fetch ${url} from: connect an RPCClient to its server first (the handshake ` +
    "names its replication port), or pass {peers: ['host:port']}, set LIBVMS_PEERS=host:port, call addPeer('host:port'), or look it up on a DHT with {swarm: true} or {bootstrap: ['host:port']}")
}

module.exports = { addPeer, resolvePeers, fromEnv, noPeerError, addSwarmPeer, swarmPeers, knownSwarm }
