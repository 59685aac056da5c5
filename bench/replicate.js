'use strict'
// Replication over loopback: fetch a 100,000-entry call log (into memory, then onto disk) and a 1,000-file archive.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { CallLog, DatArchive, ReplicationHost } = require('..')
const { time, fmt, printTable } = require('./table')

const ENTRIES = Number(process.env.BENCH_REPL_ENTRIES || 100000)
const FILES = Number(process.env.BENCH_REPL_FILES || 1000)

async function main () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-bench-repl-'))
  const rows = []
  try {
    const log = await CallLog.create(path.join(root, 'log'), 'exports.f = 1', 'dat://' + 'ab'.repeat(32))
    const batch = []
    for (let i = 1; i < ENTRIES; i++) batch.push(log.append({ type: 'call', call: { methodName: 'f', args: [i] }, result: { filesVersion: 1, res: i } }))
    await Promise.all(batch)
    const host = await ReplicationHost.listen()
    await host.add(log)

    let mem
    const tMem = await time(async () => { mem = await CallLog.fetch(log.url, null, { peers: [host.address], timeout: 600000 }) })
    if (mem.length !== ENTRIES) throw new Error(`fetched ${mem.length} of ${ENTRIES}`)
    await mem.close()
    rows.push([`fetch ${fmt(ENTRIES)}-entry log into memory`, `${fmt(tMem, 2)} s (${fmt(ENTRIES / tMem)} entries/s)`, '≥ 50,000 entries/s'])

    // Onto disk: the blocks of each batch received are synced together (data, then one oplog batch).
    let disk
    const tDisk = await time(async () => { disk = await CallLog.fetch(log.url, path.join(root, 'copy'), { peers: [host.address], timeout: 600000 }) })
    if (disk.length !== ENTRIES) throw new Error(`fetched ${disk.length} of ${ENTRIES} onto disk`)
    await disk.close()
    rows.push([`fetch ${fmt(ENTRIES)}-entry log onto disk`, `${fmt(tDisk, 2)} s (${fmt(ENTRIES / tDisk)} entries/s)`, ''])

    const src = await DatArchive.create({ localPath: path.join(root, 'src'), title: 'bench' })
    await src.mkdir('/f')
    for (let i = 0; i < FILES; i++) await src.writeFile(`/f/${i}.txt`, `file ${i} `.repeat(50))
    await host.add(src)
    let copy
    const tArc = await time(async () => {
      copy = new DatArchive(src.url, { localPath: path.join(root, 'arc-copy'), peers: [host.address], timeout: 600000, sparse: false })
      await copy.download('/')
    })
    rows.push([`fetch ${fmt(FILES)}-file archive onto disk`, `${fmt(tArc, 2)} s (${fmt(FILES / tArc)} files/s)`, ''])
    await copy.close()
    await src.close()
    await host.close()
    await log.close()
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
  printTable('Replication (loopback TCP, Rust host → Rust fetcher)', rows)
}

main().catch((e) => { console.error(e); process.exit(1) })
