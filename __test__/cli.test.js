'use strict'
// The `libvms` command, driven as a user would: spawned processes, real directories, 127.0.0.1, OS-chosen ports.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { VM, DatArchive, RPCServer } = require('..')
const { cli, serve, BIN, ENV } = require('./cli-helpers')
const { tmpdir, flipByte } = require('./helpers')
const pkg = require('../package.json')

const EXAMPLES = path.join(__dirname, '..', 'examples')

/** A VM directory made through the library: persisted-counter with a few calls, one of which fails. */
async function makeVMDir (t) {
  const dir = path.join(tmpdir(t), 'counter.libvms')
  const vm = new VM(fs.readFileSync(path.join(EXAMPLES, 'persisted-counter.js'), 'utf8'))
  await vm.deploy({ dir, title: 'counter' })
  await vm.executeCall({ methodName: 'inc', userId: 'alice' })
  await vm.executeCall({ methodName: 'inc', userId: 'bob' })
  await vm.executeCall({ methodName: 'nope' }).catch(() => {})
  const urls = { callLogUrl: vm.callLog.url, filesArchiveUrl: vm.filesArchive.url }
  await vm.close()
  return { dir, ...urls }
}

test('--help, --version, help for each command, unknown commands', async () => {
  const help = await cli(['--help'])
  assert.equal(help.code, 0)
  for (const cmd of ['exec', 'factory', 'call', 'repl', 'log', 'verify']) assert.match(help.stdout, new RegExp(`\\n  ${cmd} `))

  const version = await cli(['--version'])
  assert.equal(version.code, 0)
  assert.equal(version.stdout.trim(), `libvms ${pkg.version}`)

  for (const cmd of ['exec', 'factory', 'call', 'repl', 'log', 'verify']) {
    const r = await cli([cmd, '--help'])
    assert.equal(r.code, 0, cmd)
    assert.match(r.stdout, new RegExp(`^Usage: libvms ${cmd} `), cmd)
  }
  assert.match((await cli(['exec', '--help'])).stdout, /default \.\/<script name>\.libvms/)
  assert.match((await cli(['help', 'log'])).stdout, /--json/)

  const bad = await cli(['frobnicate'])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /unknown command "frobnicate"/)
  const badFlag = await cli(['log', '--bogus', '.'])
  assert.equal(badFlag.code, 2)
  assert.match(badFlag.stderr, /--bogus/)
  assert.doesNotMatch(badFlag.stderr, /\n\s+at /) // no stack trace without DEBUG
  const missing = await cli(['exec', 'no-such-script.js'])
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /cannot read no-such-script\.js/)
})

test('libvms log DIR prints one line per entry; --json one object per line; --from skips', async (t) => {
  const { dir } = await makeVMDir(t)
  const r = await cli(['log', dir])
  assert.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  assert.equal(lines.length, 4)
  assert.match(lines[0], /^#0 init .*files archive dat:\/\/[0-9a-f]{64}$/)
  assert.match(lines[1], /^#1 call {2}inc\(\) by "alice" -> 1 {2}\[files v2\]$/)
  assert.match(lines[2], /^#2 call {2}inc\(\) by "bob" -> 2 {2}\[files v3\]$/)
  assert.match(lines[3], /^#3 call {2}nope\(\) threw TypeError/)

  const j = await cli(['log', dir, '--json', '--from', '2'])
  assert.equal(j.code, 0, j.stderr)
  const entries = j.stdout.trim().split('\n').map((l) => JSON.parse(l))
  assert.deepEqual(entries, [
    { seq: 2, type: 'call', call: { methodName: 'inc', args: [], userId: 'bob' }, result: { filesVersion: 3, res: 2 } },
    { seq: 3, type: 'call', call: { methodName: 'nope', args: [] }, result: { filesVersion: 3, err: 'TypeError' } }
  ])

  const notVM = await cli(['log', tmpdir(t)])
  assert.equal(notVM.code, 2)
  assert.match(notVM.stderr, /holds no call log/)
})

test('libvms verify: verified (0), tampered archive (1, paths named), not a VM dir or a URL (2)', async (t) => {
  const { dir, callLogUrl, filesArchiveUrl } = await makeVMDir(t)
  const ok = await cli(['verify', dir])
  assert.equal(ok.code, 0, ok.stdout + ok.stderr)
  assert.match(ok.stdout, /VERIFIED\n$/)
  assert.match(ok.stdout, /replayed 4\/4 entries/)
  assert.equal(ok.stderr, '') // no progress output off a terminal

  // NodeVMS 1.x flags: the expected URLs.
  assert.equal((await cli(['verify', dir, '--log', callLogUrl, '--files', filesArchiveUrl])).code, 0)
  const wrongLog = await cli(['verify', dir, '--log', 'dat://' + 'ab'.repeat(32)])
  assert.equal(wrongLog.code, 1)
  assert.match(wrongLog.stderr, /not the expected dat:\/\/abab/)

  // Behind the log's back: change the counter and add a file.
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'))
  const archive = new DatArchive(meta.url, { localPath: path.join(dir, 'files') })
  await archive.writeFile('/counter', '1000')
  await archive.writeFile('/backdoor', 'x')
  await archive.close()
  const bad = await cli(['verify', dir])
  assert.equal(bad.code, 1, bad.stdout + bad.stderr)
  assert.match(bad.stdout, /NOT VERIFIED/)
  assert.match(bad.stderr, /Files archive mismatch/)
  assert.match(bad.stderr, /\/backdoor/)
  assert.match(bad.stderr, /\/counter/)

  const notVM = await cli(['verify', tmpdir(t)])
  assert.equal(notVM.code, 2)
  assert.match(notVM.stderr, /not a VM directory/)
  const missing = await cli(['verify', path.join(dir, 'nope')])
  assert.equal(missing.code, 2)
  const remote = await cli(['verify', 'ws://127.0.0.1:1/x', '--timeout', '1000'])
  assert.equal(remote.code, 2)
  assert.match(remote.stderr, /cannot reach ws:\/\/127\.0\.0\.1:1\/x/)
})

test('libvms verify: a changed byte in the call log is caught (1)', async (t) => {
  const { dir } = await makeVMDir(t)
  flipByte(path.join(dir, 'call-log', 'data'), -5)
  const r = await cli(['verify', dir])
  assert.equal(r.code, 1, r.stdout + r.stderr)
  assert.match(r.stdout, /NOT VERIFIED/)
  assert.match(r.stderr, /call log \(.*block 3/) // the damaged block, named in the core that holds it
})

test('libvms verify: a nondeterministic script fails with the first divergent entry (1)', async (t) => {
  const dir = path.join(tmpdir(t), 'random.libvms')
  const prev = process.env.NODE_ENV
  process.env.NODE_ENV = 'test' // System.test.random, in this process and the spawned verifier
  t.after(() => { process.env.NODE_ENV = prev })
  const vm = new VM('exports.roll = () => System.test.random()')
  await vm.deploy({ dir })
  await vm.executeCall({ methodName: 'roll' })
  await vm.close()
  const r = await cli(['verify', dir], { env: { ...ENV, NODE_ENV: 'test' } })
  assert.equal(r.code, 1, r.stdout + r.stderr)
  assert.match(r.stderr, /Call log mismatch/)
  assert.match(r.stderr, /entry 1 in the log: +\{"type":"call"/)
})

test('exec, call, repl, SIGINT, restart on the same dir, log and verify', async (t) => {
  const dir = path.join(tmpdir(t), 'pc.libvms')
  const script = path.join(EXAMPLES, 'persisted-counter.js')
  const first = await serve(t, ['exec', script, '--port', '0', '--host', '127.0.0.1', '--dir', dir])
  assert.match(first.stdout(), new RegExp(`Data directory ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
  assert.match(first.stdout(), /Files archive dat:\/\/[0-9a-f]{64}/)
  assert.match(first.stdout(), /Call log {6}dat:\/\/[0-9a-f]{64}/)

  const one = await cli(['call', first.url, 'inc', '--user', 'alice'])
  assert.equal(one.code, 0, one.stderr)
  assert.equal(one.stdout, '1\n')
  assert.equal((await cli(['call', first.url, 'inc'])).stdout, '2\n')
  const viaRepl = await cli(['repl', first.url, '--user', 'bob', '--exec', 'inc()'])
  assert.equal(viaRepl.code, 0, viaRepl.stderr)
  assert.equal(viaRepl.stdout, '3\n')
  const missing = await cli(['call', first.url, 'nope'])
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /no method "nope"/)

  const stopped = await first.stop('SIGINT')
  assert.equal(stopped.code, 130, stopped.stderr)
  assert.match(stopped.stdout, /Stopped\.\n$/)

  // NodeVMS habit: `nodevms SCRIPT -p PORT --dir DIR` is exec. State and log survived the restart.
  const second = await serve(t, [script, '-p', '0', '--dir', dir])
  assert.equal((await cli(['call', second.url, 'get'])).stdout, '3\n')
  assert.equal((await second.stop('SIGTERM')).code, 143)

  const log = await cli(['log', dir])
  assert.equal(log.code, 0, log.stderr)
  const lines = log.stdout.trim().split('\n')
  assert.match(lines[1], /inc\(\) by "alice" -> 1/)
  assert.match(lines[3], /inc\(\) by "bob" -> 3/)
  assert.match(lines[4], /^#4 restart$/)
  assert.match(lines[5], /get\(\) by "" -> 3/)
  const verified = await cli(['verify', dir])
  assert.equal(verified.code, 0, verified.stdout + verified.stderr)
})

test('factory: provision over RPC with libvms call, then call the VM at /<id>', async (t) => {
  const dir = path.join(tmpdir(t), 'host.libvms')
  const host = await serve(t, ['factory', path.join(EXAMPLES, 'factory.js'), '--port', '0', '--dir', dir, '--max-vms', '1'])
  const code = fs.readFileSync(path.join(EXAMPLES, 'counter.js'), 'utf8')
  const made = await cli(['call', host.url, 'provisionVM', JSON.stringify({ code, title: 'c' }), '--user', 'alice'])
  assert.equal(made.code, 0, made.stderr)
  const info = JSON.parse(made.stdout)
  assert.equal((await cli(['call', host.url + info.id, 'inc'])).stdout, '1\n')
  const full = await cli(['call', host.url, 'provisionVM', JSON.stringify({ code })])
  assert.equal(full.code, 1)
  assert.match(full.stderr, /This host is at maximum capacity/)
  assert.equal((await host.stop()).code, 130)
  assert.ok(fs.existsSync(path.join(dir, info.id, 'call-log')))
})

test('lib/debug follows the DEBUG convention; DEBUG=libvms* adds debug lines and stack traces', async (t) => {
  const { enabled } = require('../lib/debug')
  assert.equal(enabled('libvms:cli', 'libvms*'), true)
  assert.equal(enabled('libvms:cli', 'libvms:factory'), false)
  assert.equal(enabled('libvms:cli', 'other,libvms:*,-libvms:cli'), false)
  assert.equal(enabled('libvms:factory', 'other, libvms:*'), true)
  assert.equal(enabled('libvms:cli', ''), false)

  const dir = tmpdir(t)
  const r = await cli(['verify', dir], { env: { ...ENV, DEBUG: 'libvms*' } })
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^libvms:cli verify /m)
  assert.match(r.stderr, /\n\s+at /) // the stack, for debugging
})

test('an auditor verifies a running host by URL; a host whose archive changed behind the log is a mismatch', async (t) => {
  const dir = path.join(tmpdir(t), 'audited.libvms')
  const script = path.join(EXAMPLES, 'persisted-counter.js')
  const host = await serve(t, ['exec', script, '--port', '0', '--dir', dir])
  assert.match(host.stdout(), /Replication {3}127\.0\.0\.1:\d+ \(Hypercore protocol\)/)
  for (const user of ['alice', 'bob', 'carol']) assert.equal((await cli(['call', host.url, 'inc', '--user', user])).code, 0)

  const audit = await cli(['verify', host.url])
  assert.equal(audit.code, 0, audit.stdout + audit.stderr)
  assert.match(audit.stdout, /fetching from 127\.0\.0\.1:\d+/)
  assert.match(audit.stdout, /\(snapshot at length 4\)/) // init entry, three incs
  assert.match(audit.stdout, /VERIFIED/)
  assert.equal((await host.stop()).code, 130)

  // Behind the log's back: the last write of the stored counter is replaced by another (same archive version, other
  // content; writes merely added after the log's last call would be undone at reopen, as a crash's are); the host
  // then serves again from that dir.
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'))
  const archive = new DatArchive(meta.url, { localPath: path.join(dir, 'files') })
  await archive.ready()
  await archive._truncate(archive.version - 1)
  await archive.writeFile('/counter', '1000')
  await archive.close()
  const tampered = await serve(t, ['exec', script, '--port', '0', '--dir', dir])
  const caught = await cli(['verify', tampered.url])
  assert.equal(caught.code, 1, caught.stdout + caught.stderr)
  assert.match(caught.stdout, /NOT VERIFIED/, caught.stderr)
  assert.match(caught.stderr, /mismatch/)
  assert.equal((await tampered.stop()).code, 130)

  const nobody = await cli(['verify', 'ws://127.0.0.1:1/', '--timeout', '1000'])
  assert.equal(nobody.code, 2, nobody.stdout + nobody.stderr)
})
