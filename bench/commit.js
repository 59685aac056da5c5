'use strict'
// The commit path: a sequential durable executeCall (trivial, and writing a small file), each beside the same
// run's floor, a bare 128-byte write + fdatasync, as a ratio (issue target: <= 1.5x for the trivial call).
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { VM } = require('..')
const { time, fmt, printTable } = require('./table')

const SCRIPT = `
  let n = 0
  exports.inc = (by) => (n += by)
  exports.write = async (i) => { await System.files.writeFile('/state.json', JSON.stringify({ i })) }`

async function main () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-bench-'))
  try {
    const N = 2000
    const fd = fs.openSync(path.join(root, 'floor'), 'w')
    const buf = Buffer.alloc(128, 1)
    const floor = await time(async () => {
      for (let i = 0; i < N; i++) {
        fs.writeSync(fd, buf, 0, buf.length, i * 128)
        fs.fdatasyncSync(fd)
      }
    }) / N
    fs.closeSync(fd)
    const vm = new VM(SCRIPT)
    await vm.deploy({ dir: path.join(root, 'vm'), title: 'bench' })
    const trivial = await time(async () => { for (let i = 0; i < N; i++) await vm.executeCall({ methodName: 'inc', args: [1] }) }) / N
    const W = 1000
    const writes = await time(async () => { for (let i = 0; i < W; i++) await vm.executeCall({ methodName: 'write', args: [i] }) }) / W
    await vm.close()
    const ms = (s) => `${fmt(s * 1000, 3)} ms`
    printTable(`Commit path (${os.cpus().length} cores, Node ${process.version})`, [
      ['floor: 128-byte write + fdatasync', ms(floor), ''],
      ['sequential durable executeCall (trivial)', `${ms(trivial)} (${fmt(trivial / floor, 2)}x floor)`, '<= 1.5x floor'],
      ['sequential durable executeCall writing a small file', `${ms(writes)} (${fmt(writes / floor, 2)}x floor)`, '']
    ])
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
