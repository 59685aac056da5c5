'use strict'
// Hyperswarm leftovers of issue 18, on a loopback testnet (@hyperswarm/testnet on 127.0.0.1) only: the
// `new ReplicationHost({ bootstrap })` form, swarm peers in the peer registry, and `libvms verify ws://... --bootstrap`
// against a host that serves its VM's data through the DHT only. (Own file: the registry is per process.)
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawn } = require('node:child_process')

const { CallLog, DatArchive, ReplicationHost } = require('..')
const { swarmPeers, knownSwarm } = require('../lib/peers')
const { swarmConfig } = require('../lib/swarm')
const { tmpdir, loopbackTestnet } = require('./helpers')
const { cli } = require('./cli-helpers')

const net = loopbackTestnet()

test('new ReplicationHost({ bootstrap }) serves; the peer a fetch finds on the DHT joins the registry and serves later fetches', async (t) => {
  const log = await CallLog.create(path.join(tmpdir(t), 'log'), 'exports.f = 1', 'dat://' + 'ab'.repeat(32))
  t.after(() => log.close())
  await log.append({ i: 1 })
  const archive = await DatArchive.create({ localPath: path.join(tmpdir(t), 'files'), title: 'registry' })
  t.after(() => archive.close())
  await archive.writeFile('/a.txt', 'found through the registry')

  const host = new ReplicationHost({ bootstrap: net.bootstrap })
  t.after(() => host.close())
  assert.equal(host.port, null, 'not listening yet')
  assert.equal(host.swarm, true)
  await host.add(log) // waits for the listen
  assert.ok(Number.isInteger(host.port) && host.port > 0)
  await host.add(archive)
  assert.equal((await host.ready()), host)

  // Nothing known yet: a fetch without options has no peer.
  assert.equal(knownSwarm(), null)
  assert.throws(() => new DatArchive(archive.url), { code: 'CONNECTION_FAILED' })

  const fetched = await CallLog.fetch(log.url, null, { bootstrap: net.bootstrap, timeout: 15000 })
  t.after(() => fetched.close())
  assert.deepEqual(await fetched.get(1), { i: 1 })
  const config = swarmConfig({ bootstrap: net.bootstrap })
  assert.deepEqual(swarmPeers(config).map(k => k.toString('hex')), [host._swarm.keyPair.publicKey.toString('hex')])
  assert.deepEqual(knownSwarm(), config)

  // No peers, no DHT option: the registry's swarm peer is asked (on the DHT it was found on).
  const copy = new DatArchive(archive.url, { localPath: path.join(tmpdir(t), 'copy'), timeout: 15000 })
  t.after(() => copy.close())
  assert.equal(await copy.readFile('/a.txt'), 'found through the registry')

  // The old form still works, and a host that failed to listen says so from ready() and add().
  const old = await ReplicationHost.listen()
  t.after(() => old.close())
  assert.equal(old.swarm, false)
  const taken = new ReplicationHost({ port: old.port })
  await assert.rejects(taken.ready(), { code: 'CONNECTION_FAILED' })
  await assert.rejects(taken.add(log), { code: 'CONNECTION_FAILED' })
  await taken.close()
})

function run (args, opts = {}) {
  return spawn(process.execPath, args, { env: { ...process.env, DEBUG: '' }, ...opts })
}


test('two processes: `libvms verify ws://... --bootstrap` fetches from the DHT when the host names no replication port', async (t) => {
  const host = run([path.join(__dirname, 'fixtures', 'swarm', 'dht-only-host.js'), path.join(tmpdir(t), 'vm'), net.bootstrap.join(',')])
  const exited = new Promise(resolve => host.on('exit', resolve))
  t.after(async () => { if (host.exitCode === null) { host.stdin.end(); await exited } })
  let out = ''
  let err = ''
  host.stderr.on('data', d => { err += d })
  const port = await new Promise((resolve, reject) => {
    host.stdout.on('data', d => {
      out += d
      const m = /READY (\d+)/.exec(out)
      if (m) resolve(m[1])
    })
    exited.then(code => reject(new Error(`host exited with ${code}: ${err}`)))
  })
  const url = `ws://127.0.0.1:${port}/`
  for (const user of ['alice', 'bob']) {
    const r = await cli(['call', url, 'inc', '--user', user])
    assert.equal(r.code, 0, r.stderr)
  }

  // Without a DHT there is no way to the data.
  const blind = await cli(['verify', url, '--timeout', '20000'])
  assert.equal(blind.code, 2, blind.stdout + blind.stderr)
  assert.match(blind.stderr, /no replicationPort in its handshake\); look it up with --swarm or --bootstrap/)

  const audit = await cli(['verify', url, '--bootstrap', net.bootstrap.join(','), '--timeout', '30000'])
  assert.equal(audit.code, 0, audit.stdout + audit.stderr)
  assert.match(audit.stdout, /fetching from the Hyperswarm DHT/)
  assert.match(audit.stdout, /VERIFIED/)
  assert.match(audit.stdout, /\(snapshot at length 3\)/)
  host.stdin.end()
  assert.equal(await exited, 0)
})
