'use strict'
// Replay memory: peak RSS of verifying a long log (replay into a fresh VM + compareLogs + compareArchives), in a
// child process of its own, beside the same run's floor (a child that only loads libvms and opens the log).
// LIBVMS_BENCH_ENTRIES sets the log length (default 500,000).
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { VM, CallLog, Verifier } = require('..')
const { time, fmt, printTable } = require('./table')

const SCRIPT = 'let n = 0\nexports.inc = (by) => (n += by)'

async function child (dir, mode) {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'))
  const log = await CallLog.open(path.join(dir, 'call-log'))
  if (mode === 'verify') {
    const { DatArchive } = require('..')
    const archive = new DatArchive(meta.url, { localPath: path.join(dir, 'files') })
    await archive.ready()
    const replica = await VM.fromCallLog(log, { filesArchiveUrl: meta.url })
    await Verifier.compareLogs(log, replica.callLog)
    await Verifier.compareArchives(archive, replica.filesArchive)
    await replica.close()
    await archive.close()
  }
  await log.close()
  process.stdout.write(JSON.stringify({ maxRSS: process.resourceUsage().maxRSS * 1024 }) + '\n')
}

function run (dir, mode) {
  const r = spawnSync(process.execPath, [__filename, 'child', dir, mode], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${mode} child failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()).maxRSS
}

async function main () {
  const N = Number(process.env.LIBVMS_BENCH_ENTRIES || 500000)
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-bench-'))
  try {
    const dir = path.join(root, 'host')
    const vm = new VM(SCRIPT)
    await vm.deploy({ dir, title: 'bench' })
    // The entries executeCall would write, appended directly (building the log is not what is measured).
    const build = await time(async () => {
      for (let i = 0; i < N; i += 10000) {
        const batch = []
        for (let k = i; k < Math.min(N, i + 10000); k++) batch.push(vm.callLog.appendCall({ methodName: 'inc', args: [1], res: k + 1, filesVersion: 1 }))
        await Promise.all(batch)
      }
    })
    await vm.close()
    const floor = run(dir, 'open')
    let rss
    const verify = await time(async () => { rss = run(dir, 'verify') })
    const mb = (b) => `${fmt(b / 1048576, 0)} MB`
    printTable(`Replay memory (${os.cpus().length} cores, Node ${process.version})`, [
      [`verify (replay + compareLogs + compareArchives) of ${fmt(N + 1)} entries: peak RSS`, `${mb(rss)} (floor ${mb(floor)}: ${fmt(rss / floor, 1)}x), ${fmt(verify, 1)} s`, '< 200 MB for 1,000,000'],
      ['building the log (direct appends)', `${fmt(N / build)} entries/s`, '']
    ])
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

if (process.argv[2] === 'child') child(process.argv[3], process.argv[4]).catch((e) => { console.error(e); process.exit(1) })
else main().catch((e) => { console.error(e); process.exit(1) })
