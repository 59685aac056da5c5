'use strict'
// VM benchmark: durable executeCall (trivial and file-writing), replay speed, compareLogs speed. Prints a table.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { VM, Verifier } = require('..')
const { time, fmt, printTable } = require('./table')

const SCRIPT = `
  let n = 0
  exports.inc = (by) => (n += by)
  exports.write = async (i) => { await System.files.writeFile('/state.json', JSON.stringify({ i })) }`

async function main () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-bench-'))
  try {
    const rows = []
    const vm = new VM(SCRIPT)
    await vm.deploy({ dir: path.join(root, 'host'), title: 'bench' })

    const SEQ = 3000
    const trivial = await time(async () => { for (let i = 0; i < SEQ; i++) await vm.executeCall({ methodName: 'inc', args: [1], userId: 'alice' }) })
    rows.push(['sequential trivial call (durable)', `${fmt(trivial / SEQ * 1000, 3)} ms`, '< 0.4 ms'])

    // File writes on a VM of their own, so the replay below measures trivial calls only.
    const writer = new VM(SCRIPT)
    await writer.deploy({ dir: path.join(root, 'writer'), title: 'bench' })
    const WRITES = 1000
    const writes = await time(async () => { for (let i = 0; i < WRITES; i++) await writer.executeCall({ methodName: 'write', args: [i] }) })
    rows.push(['sequential call writing a file', `${fmt(writes / WRITES * 1000, 3)} ms`, ''])
    await writer.close()

    // Grow the log to a size where replay speed is steady, then replay it.
    const BULK = 100000
    await Promise.all(Array.from({ length: BULK }, () => vm.executeCall({ methodName: 'inc', args: [1] })))
    const total = vm.callLog.length
    let replica
    const replay = await time(async () => {
      replica = await VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url }, { dir: path.join(root, 'replica') })
    })
    rows.push([`replay of ${fmt(total)} entries`, `${fmt(total / replay)} calls/s`, '>= 50,000 calls/s'])

    const compare = await time(() => Verifier.compareLogs(vm.callLog, replica.callLog))
    rows.push([`compareLogs of ${fmt(total)} entries`, `${fmt(total / compare)} entries/s`, '>= 500,000 entries/s'])

    const archives = await time(() => Verifier.compareArchives(vm.filesArchive, replica.filesArchive))
    rows.push(['compareArchives', `${fmt(archives * 1000, 1)} ms`, ''])

    await replica.close()
    await vm.close()
    printTable(`VM (${os.cpus().length} cores, Node ${process.version})`, rows)
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
