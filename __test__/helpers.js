'use strict'
// Test helpers: temp dirs that are removed after the test, whatever happens; replay checks; a loopback DHT testnet.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const test = require('node:test')

/** A fresh temp dir, removed when the test `t` ends. */
function tmpdir (t, prefix = 'libvms-test-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Flip one byte of a file at `offset` (negative: from the end). */
function flipByte (file, offset) {
  const fd = fs.openSync(file, 'r+')
  try {
    const size = fs.fstatSync(fd).size
    const at = offset < 0 ? size + offset : offset
    const b = Buffer.alloc(1)
    fs.readSync(fd, b, 0, 1, at)
    b[0] ^= 0xff
    fs.writeSync(fd, b, 0, 1, at)
  } finally {
    fs.closeSync(fd)
  }
}

/** Replay `vm`'s log into a fresh VM and check that it made the same log and the same files. */
async function assertReplays (vm) {
  const { VM, Verifier } = require('..')
  const replica = await VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url })
  try {
    await Verifier.compareLogs(vm.callLog, replica.callLog)
    await Verifier.compareArchives(vm.filesArchive, replica.filesArchive)
  } finally {
    await replica.close()
  }
}

/**
 * A 3-node DHT testnet on loopback for the test file that calls this: `net.testnet` and `net.bootstrap` (its
 * nodes as 'host:port') once the file's tests start; destroyed after them.
 */
function loopbackTestnet () {
  const net = { testnet: null, bootstrap: null }
  test.before(async () => {
    net.testnet = await require('@hyperswarm/testnet')(3, { host: '127.0.0.1' })
    net.bootstrap = net.testnet.bootstrap.map(b => `${b.host}:${b.port}`)
  })
  test.after(() => net.testnet.destroy())
  return net
}

module.exports = { tmpdir, flipByte, assertReplays, loopbackTestnet }
