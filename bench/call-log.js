'use strict'
// CallLog benchmark: durable appends, verified reads, verify(), streaming memory. Prints a table.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { CallLog } = require('..')
const { time, fmt, printTable } = require('./table')

const entry = (i) => ({ type: 'call', call: { methodName: 'inc', args: [i], userId: 'alice' }, result: { filesVersion: 1, res: i } })

async function main () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-bench-'))
  try {
    const rows = []
    const log = await CallLog.create(path.join(root, 'a'), 'exports.inc = n => n', 'dat://' + '00'.repeat(32))

    const SEQ = 2000
    const seqSecs = await time(async () => { for (let i = 0; i < SEQ; i++) await log.append(entry(i)) })
    rows.push(['sequential durable append', `${fmt(seqSecs / SEQ * 1000, 3)} ms (${fmt(SEQ / seqSecs)}/s)`, '< 0.5 ms'])

    const PAR = 100000
    const parSecs = await time(async () => {
      let next = 0
      const worker = async () => { while (next < PAR) await log.append(entry(next++)) }
      await Promise.all(Array.from({ length: 64 }, worker))
    })
    rows.push(['appends, 64 in flight', `${fmt(PAR / parSecs)}/s`, '>= 30,000/s'])

    const n = log.length
    const READS = 200000
    const readSecs = await time(async () => { for (let i = 0; i < READS; i++) await log.get(i % n) })
    rows.push(['verified get (json)', `${fmt(READS / readSecs)}/s`, '>= 200,000/s'])

    const verifySecs = await time(() => log.verify())
    rows.push([`verify() of ${fmt(n)} entries`, `${fmt(n / verifySecs)} entries/s`, ''])
    await log.close()

    // Streaming 100,000 entries: memory must not grow with the log.
    const reopened = await CallLog.open(path.join(root, 'a'))
    if (global.gc) global.gc()
    const before = process.memoryUsage().rss
    let peak = before
    let count = 0
    const streamSecs = await time(async () => {
      for await (const e of reopened.entries({ end: 100001 })) {
        if (e && ++count % 5000 === 0) peak = Math.max(peak, process.memoryUsage().rss)
      }
    })
    rows.push([`stream ${fmt(count)} entries`, `${fmt(streamSecs * 1000)} ms, peak RSS +${fmt((peak - before) / 1048576, 1)} MiB`, 'flat memory'])
    await reopened.close()

    printTable(`CallLog (${os.cpus().length} cores, Node ${process.version})`, rows)
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
