'use strict'
// DatArchive benchmark: durable small writes, reads, readdir of a big folder, large files each way, disk use.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { DatArchive } = require('..')
const { time, fmt, printTable } = require('./table')

function du (dir) {
  let total = 0
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    total += e.isDirectory() ? du(p) : fs.statSync(p).blocks * 512
  }
  return total
}

async function main () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-bench-'))
  try {
    const rows = []
    const localPath = path.join(root, 'files')
    const archive = await DatArchive.create({ localPath, title: 'bench' })
    await archive.mkdir('/small')

    const WRITES = 2000
    const before = du(localPath)
    const wSecs = await time(async () => {
      for (let i = 0; i < WRITES; i++) await archive.writeFile(`/small/f${i}.json`, JSON.stringify({ i, v: 'x'.repeat(40) }))
    })
    rows.push(['small durable writeFile', `${fmt(WRITES / wSecs)}/s`, '>= 1,000/s'])
    rows.push(['bytes on disk per small write', `${fmt((du(localPath) - before) / WRITES)} B`, ''])

    const READS = 20000
    const rSecs = await time(async () => { for (let i = 0; i < READS; i++) await archive.readFile(`/small/f${i % WRITES}.json`) })
    rows.push(['small readFile', `${fmt(READS / rSecs)}/s`, '>= 50,000/s'])

    await archive.mkdir('/big-folder')
    for (let i = 0; i < 10000; i++) await archive.writeFile(`/big-folder/e${i}`, '')
    let names
    const dSecs = await time(async () => { names = await archive.readdir('/big-folder') })
    rows.push([`readdir of ${fmt(names.length)} entries`, `${fmt(dSecs * 1000, 1)} ms`, '< 50 ms'])

    const big = Buffer.alloc(50 * 1024 * 1024, 7)
    const bwSecs = await time(() => archive.writeFile('/big.bin', big))
    rows.push(['50 MB writeFile', `${fmt(50 / bwSecs)} MB/s`, '>= 200 MB/s'])
    let back
    const brSecs = await time(async () => { back = await archive.readFile('/big.bin', 'binary') })
    if (!back.equals(big)) throw new Error('large file did not round-trip')
    rows.push(['50 MB readFile', `${fmt(50 / brSecs)} MB/s`, '>= 200 MB/s'])
    await archive.close()

    printTable(`DatArchive (${os.cpus().length} cores, Node ${process.version})`, rows)
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
