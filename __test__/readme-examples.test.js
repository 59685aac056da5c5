'use strict'
// The libvms 2 README's examples (serve, call, audit), verbatim, against this checkout: twice in the same folder, so
// the second round reopens the served VM and replays into the audit folder the first round left behind.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { tmpdir } = require('./helpers')
const readme = require('./readme-harness')

const ROOT = path.join(__dirname, '..')

test('the README examples serve, call and audit, twice in the same folder', async (t) => {
  const app = tmpdir(t)
  fs.mkdirSync(path.join(app, 'node_modules'))
  fs.symlinkSync(ROOT, path.join(app, 'node_modules', 'libvms'), 'dir')
  readme.prepare(app)
  for (let round = 1; round <= 2; round++) {
    const server = await readme.serve(app)
    t.after(() => readme.stop(server))
    assert.match(server.output(), /vm api exports: \[ 'foo' \]\nServing at localhost:5555\nFiles URL: dat:\/\/[0-9a-f]{64}\n/)
    const call = readme.run(app, 'call')
    assert.equal(call.stdout, 'bar\n', call.stderr)
    const audit = readme.run(app, 'audit')
    assert.equal(audit.status, 0, audit.stderr)
    assert.equal(audit.stdout + audit.stderr, '')
    await readme.stop(server)
  }
  // The replica left in ./audit-dir is of the served log: two rounds of one call, and the restart between them.
  const meta = JSON.parse(fs.readFileSync(path.join(app, 'audit-dir', 'meta.json'), 'utf8'))
  assert.match(meta.replicaOf, /^dat:\/\/[0-9a-f]{64}$/)
})

test('a plain fetch with no peer configured fails at once, saying how to add one', async (t) => {
  const { CallLog, DatArchive } = require('..')
  const url = 'dat://' + 'ab'.repeat(32)
  const saved = process.env.LIBVMS_PEERS
  delete process.env.LIBVMS_PEERS
  t.after(() => { if (saved !== undefined) process.env.LIBVMS_PEERS = saved })
  const hint = /no peer to fetch dat:\/\/(ab){32} from: connect an RPCClient .*LIBVMS_PEERS=host:port.*addPeer/
  await assert.rejects(CallLog.fetch(url), (e) => e.code === 'CONNECTION_FAILED' && hint.test(e.message))
  assert.throws(() => new DatArchive(url), (e) => e.code === 'CONNECTION_FAILED' && hint.test(e.message))
})
