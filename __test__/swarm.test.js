'use strict'
// Discovery on a Hyperswarm DHT, against today's JS peers (hyperswarm@4 with hypercore@11 and hypercore@10). Every DHT
// here is a loopback testnet (@hyperswarm/testnet on 127.0.0.1), destroyed at the end: nothing reaches the public
// network.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const fs = require('node:fs')
const { spawn } = require('node:child_process')
const Hyperswarm = require('hyperswarm')
const Hypercore10 = require('hypercore')
const Hypercore11 = require('hypercore11')

const { CallLog, DatArchive, ReplicationHost } = require('..')
const { swarmConfig } = require('../lib/swarm')
const { tmpdir, loopbackTestnet } = require('./helpers')
const { cli, BIN } = require('./cli-helpers')

const EXAMPLES = path.join(__dirname, '..', 'examples')

const net = loopbackTestnet()

/** A JS peer on the testnet (its DHT node bound to loopback), destroyed after `t`. */
function jsSwarm (t) {
  const swarm = new Hyperswarm({ dht: net.testnet.createNode() })
  t.after(() => swarm.destroy())
  return swarm
}

async function makeLog (t, n) {
  const log = await CallLog.create(path.join(tmpdir(t), 'log'), 'exports.f = v => v', 'dat://' + 'ab'.repeat(32))
  const entries = [await log.get(0)]
  for (let i = 0; i < n; i++) entries.push({ type: 'call', call: { methodName: 'f', args: [i], userId: 'u' }, result: { filesVersion: 1, res: i } })
  await Promise.all(entries.slice(1).map(e => log.append(e)))
  t.after(() => log.close())
  return { log, entries }
}

const until = async (what, ms = 10000) => {
  const t0 = Date.now()
  while (!(await what())) {
    if (Date.now() - t0 > ms) throw new Error('condition not reached in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

for (const [name, Hypercore] of [['hypercore@11', Hypercore11], ['hypercore@10', Hypercore10]]) {
  test(`a JS hyperswarm + ${name} peer finds our call log by its discovery key and replicates it, live appends included`, async (t) => {
    const { log, entries } = await makeLog(t, 300)
    const host = await ReplicationHost.listen({ bootstrap: net.bootstrap })
    t.after(() => host.close())
    assert.equal(host.swarm, true)
    await host.add(log) // resolves once announced

    const core = new Hypercore(path.join(tmpdir(t), 'js'), log.key, { valueEncoding: 'json' })
    t.after(() => core.close())
    await core.ready()
    const swarm = jsSwarm(t)
    swarm.on('connection', (conn) => core.replicate(conn))
    swarm.join(core.discoveryKey, { server: false, client: true })

    await until(() => core.length === entries.length)
    for (let i = 0; i < entries.length; i += 37) assert.deepEqual(await core.get(i), entries[i], `entry ${i}`)
    assert.deepEqual(await core.get(entries.length - 1), entries[entries.length - 1])
    // Live: an entry appended on our side reaches the JS peer on the same connection.
    await log.append({ live: true })
    await until(() => core.length === entries.length + 1)
    assert.deepEqual(await core.get(entries.length), { live: true })
  })

  test(`our CallLog.fetch finds a core that a JS ${name} peer announces and replicates it`, async (t) => {
    const core = new Hypercore(path.join(tmpdir(t), 'js'), { valueEncoding: 'json' })
    t.after(() => core.close())
    await core.ready()
    const entries = [{ type: 'init', code: 'x', filesArchiveUrl: 'dat://' + 'ef'.repeat(32) }]
    for (let i = 0; i < 200; i++) entries.push({ type: 'call', call: { methodName: 'm', args: [i] }, result: { filesVersion: 1 } })
    await core.append(entries)
    const swarm = jsSwarm(t)
    swarm.on('connection', (conn) => core.replicate(conn))
    await swarm.join(core.discoveryKey, { server: true, client: false }).flushed()

    const url = 'dat://' + core.key.toString('hex')
    let progress = null
    const log = await CallLog.fetch(url, path.join(tmpdir(t), 'copy'), { bootstrap: net.bootstrap, timeout: 15000, _onProgress: (held, length) => { progress = [held, length] } })
    t.after(() => log.close())
    assert.equal(log.length, entries.length)
    assert.deepEqual(progress, [entries.length, entries.length]) // what `libvms verify dat://` draws its bar from
    assert.deepEqual(await log.list(), entries)
    assert.equal(await log.verify(), true)
    // The JS writer appends; the fetched log follows.
    const appended = new Promise(resolve => log.once('append', resolve))
    await core.append({ later: 1 })
    assert.equal(await appended, entries.length)
    assert.deepEqual(await log.get(entries.length), { later: 1 })
  })
}

test('a DatArchive is found on the DHT by its URL and fetched from our host (metadata and content)', async (t) => {
  const archive = await DatArchive.create({ localPath: path.join(tmpdir(t), 'files'), title: 'swarm' })
  t.after(() => archive.close())
  await archive.writeFile('/a.txt', 'hello over the DHT')
  await archive.writeFile('/big.bin', Buffer.alloc(200 * 1024, 7))
  const host = await ReplicationHost.listen({ bootstrap: net.testnet.bootstrap }) // {host, port} objects work too
  t.after(() => host.close())
  await host.add(archive)

  const copy = new DatArchive(archive.url, { localPath: path.join(tmpdir(t), 'copy'), bootstrap: net.bootstrap, timeout: 15000 })
  t.after(() => copy.close())
  assert.equal(await copy.readFile('/a.txt'), 'hello over the DHT')
  assert.deepEqual(await copy.readFile('/big.bin', 'binary'), Buffer.alloc(200 * 1024, 7))
})

test('without swarm options nothing joins a DHT; a fetch that finds no one fails in time', async (t) => {
  assert.equal(swarmConfig({}, {}), null)
  assert.equal(swarmConfig({ swarm: false }, {}), null)
  assert.deepEqual(swarmConfig({ swarm: true }, {}), { bootstrap: null })
  assert.deepEqual(swarmConfig({}, { LIBVMS_BOOTSTRAP: '127.0.0.1:1,[::1]:2' }), { bootstrap: [{ host: '127.0.0.1', port: 1 }, { host: '::1', port: 2 }] })
  assert.deepEqual(swarmConfig({ swarm: { bootstrap: ['h:3'] } }, {}), { bootstrap: [{ host: 'h', port: 3 }] })
  assert.throws(() => swarmConfig({ bootstrap: ['nope'] }, {}), { code: 'BAD_ARGUMENT' })
  assert.throws(() => swarmConfig({ bootstrap: [] }, {}), { code: 'BAD_ARGUMENT' })
  const host = await ReplicationHost.listen()
  t.after(() => host.close())
  assert.equal(host.swarm, false)

  // Nobody announces this key on the net.testnet.
  const url = 'dat://' + '12'.repeat(32)
  await assert.rejects(CallLog.fetch(url, null, { bootstrap: net.bootstrap, timeout: 1500 }), { code: 'CONNECTION_FAILED' })
})

/** Start `libvms exec` with `args`; resolves with its output once it serves. */
function startExec (t, args) {
  const child = spawn(process.execPath, [BIN, 'exec', ...args], { env: { ...process.env, DEBUG: '' } })
  let stdout = ''
  let stderr = ''
  const exited = new Promise(resolve => child.on('exit', resolve))
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  child.stdout.on('data', d => { stdout += d })
  child.stderr.on('data', d => { stderr += d })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "Ctrl+C" line in time:\n${stdout}\n${stderr}`)), 60000)
    child.stdout.on('data', () => {
      if (stdout.includes('Ctrl+C')) {
        clearTimeout(timer)
        resolve({ output: stdout, stop: async () => { child.kill('SIGINT'); return { code: await exited, stdout } } })
      }
    })
    exited.then(code => { clearTimeout(timer); reject(new Error(`exited with ${code}:\n${stdout}\n${stderr}`)) })
  })
}


test('two processes: `libvms exec --bootstrap` serves, `libvms verify dat://LOG --bootstrap` finds, fetches, replays', async (t) => {
  const dir = path.join(tmpdir(t), 'counter.libvms')
  const script = path.join(EXAMPLES, 'persisted-counter.js')
  assert.ok(fs.existsSync(script))
  const server = await startExec(t, [script, '--port', '0', '--dir', dir, '--bootstrap', net.bootstrap.join(',')])
  assert.match(server.output, /Discovery +Hyperswarm DHT/)
  const logUrl = /Call log +(dat:\/\/[0-9a-f]{64})/.exec(server.output)[1]
  const port = /ws:\/\/127\.0\.0\.1:(\d+)\//.exec(server.output)[1]
  for (const user of ['alice', 'bob']) {
    const r = await cli(['call', `ws://127.0.0.1:${port}/`, 'inc', '--user', user])
    assert.equal(r.code, 0, r.stderr)
  }

  const audit = await cli(['verify', logUrl, '--bootstrap', net.bootstrap.join(','), '--timeout', '60000'])
  assert.equal(audit.code, 0, audit.stdout + audit.stderr)
  assert.match(audit.stdout, /VERIFIED/)
  assert.match(audit.stdout, /call log +dat:\/\/[0-9a-f]{64} \(snapshot at length 3\)/)
  const stopped = await server.stop()
  assert.equal(stopped.code, 130) // stopped by SIGINT, cleanly
})
