'use strict'
// One writer per core, whoever it is: our oplog lock is the fcntl OFD lock npm hypercore takes (through
// random-access-file and fs-native-extensions), so a running host's directory cannot be opened by npm hypercore@10,
// hyperdrive@11 + corestore@6, our CLI or a second host, and a directory npm hypercore holds cannot be opened by us.
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const Hypercore = require('hypercore')
const Corestore = require('corestore')
const Hyperdrive = require('hyperdrive')

const { VM, CallLog } = require('..')
const { tmpdir } = require('./helpers')

const BIN = path.join(__dirname, '..', 'bin', 'libvms.js')
const ROOT = path.join(__dirname, '..')
const ENV = { ...process.env, DEBUG: '' }

/** A child process running `body` (with `dir` bound); resolves once it prints "ready". Killed after `t`. */
async function holder (t, dir, body) {
  // The interval keeps the holder alive (and its handles open) until it is killed.
  const script = `const dir = ${JSON.stringify(dir)};setInterval(() => {}, 1000);(async () => { ${body}; console.log('ready') })()`
  const child = spawn(process.execPath, ['-e', script], { env: ENV, cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => { out += d; if (out.includes('ready')) resolve() })
    exited.then((code) => reject(new Error(`holder exited with ${code}`)))
  })
  return { stop: async () => { child.kill('SIGKILL'); await exited } }
}

function cli (args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: ENV })
    let stderr = ''
    child.stderr.on('data', (d) => { stderr += d })
    child.on('close', (code) => resolve({ code, stderr }))
  })
}

test('a running host locks out npm hypercore@10, hyperdrive@11, our CLI and a second host', async (t) => {
  const dir = path.join(tmpdir(t), 'vm')
  const vm = new VM('exports.put = (v) => System.files.writeFile("/v", String(v))')
  await vm.deploy({ dir })
  await vm.executeCall({ methodName: 'put', args: [1] })
  await vm.close()
  const before = fs.readFileSync(path.join(dir, 'call-log', 'oplog'))

  // The host, in another process, holds its call log and archive open.
  const host = await holder(t, dir, `
    const { VM } = require(${JSON.stringify(ROOT)})
    const vm = new VM('exports.put = (v) => System.files.writeFile("/v", String(v))')
    await vm.deploy({ dir })`)

  const core = new Hypercore(path.join(dir, 'call-log'))
  await assert.rejects(core.ready(), (e) => e.code === 'ELOCKED', 'npm hypercore must not open a running host\'s log')
  await core.close().catch(() => {})

  const store = new Corestore(path.join(dir, 'files'))
  const drive = new Hyperdrive(store)
  await assert.rejects(drive.ready(), (e) => e.code === 'ELOCKED', 'hyperdrive must not open a running host\'s archive')
  await drive.close().catch(() => {})
  await store.close().catch(() => {})

  const log = await cli(['log', dir])
  assert.equal(log.code, 2)
  assert.match(log.stderr, /in use/)

  const second = new VM('exports.put = () => 0')
  await assert.rejects(second.deploy({ dir }), (e) => e.code === 'STORAGE_LOCKED')
  await second.close().catch(() => {})
  await assert.rejects(CallLog.open(path.join(dir, 'call-log')), (e) => e.code === 'STORAGE_LOCKED')

  // Once the host is gone, the lock goes with it, and npm hypercore reads what the host wrote.
  await host.stop()
  const after = new Hypercore(path.join(dir, 'call-log'), { valueEncoding: 'json' })
  await after.ready()
  assert.ok(after.length >= 3)
  assert.equal((await after.get(0)).type, 'init')
  await after.close()
  assert.ok(fs.readFileSync(path.join(dir, 'call-log', 'oplog')).length >= before.length)
})

test('a core npm hypercore holds open is locked for us', async (t) => {
  const dir = path.join(tmpdir(t), 'core')
  const js = await holder(t, dir, `
    const Hypercore = require('hypercore')
    const core = new Hypercore(dir, { valueEncoding: 'json' })
    await core.append({ type: 'init', code: '', filesArchiveUrl: 'dat://' + 'a'.repeat(64) })`)
  await assert.rejects(CallLog.open(dir), (e) => e.code === 'STORAGE_LOCKED' && e.name === 'StorageLockedError')
  const log = await cli(['log', dir])
  assert.equal(log.code, 2)
  assert.match(log.stderr, /in use/)
  await js.stop()
  const mine = await CallLog.open(dir)
  assert.equal(mine.length, 1)
  await mine.close()
})
