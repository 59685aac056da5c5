'use strict'
// Oracle benchmark: replay speed of calls that each use an addAPI member (served from the log) beside its same-run
// floor, the replay of the same number of calls that use none. Prints a table.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { VM } = require('..')
const { time, fmt, printTable } = require('./table')

const SCRIPT = `
  let n = 0
  exports.plain = async (by) => (n += await (by * 2))
  exports.oracle = async (by) => (n += await System.ext.price(by))`
const CALLS = Number(process.env.BENCH_ORACLE_CALLS) || 30000
const PAIRS = Number(process.env.BENCH_ORACLE_PAIRS) || 7 // more pairs: a steadier median on a shared machine

/** A host VM whose log holds CALLS calls of `methodName`. */
async function host (root, name, methodName) {
  const vm = new VM(SCRIPT)
  vm.addAPI('ext', { price: (by) => by * 2 })
  await vm.deploy({ dir: path.join(root, name), title: 'bench' })
  await Promise.all(Array.from({ length: CALLS }, () => vm.executeCall({ methodName, args: [1] })))
  return vm
}

/** Calls per second of one replay of `vm`'s log. */
async function replayRate (root, vm, name) {
  if (global.gc) global.gc() // no garbage of the run before is collected on this one's time
  let replica
  const s = await time(async () => {
    replica = await VM.fromCallLog(vm.callLog, { filesArchiveUrl: vm.filesArchive.url }, { dir: path.join(root, name + '-replica') })
  })
  await replica.close()
  return vm.callLog.length / s
}

async function main () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-bench-'))
  try {
    const plain = await host(root, 'plain', 'plain')
    const withOracle = await host(root, 'oracle', 'oracle')
    // Alternated in pairs, each pair's second run first in the next pair (floor, oracle, oracle, floor, ...), so
    // neither always runs right after the other; the median pair's ratio, so a busy moment on a shared machine
    // does not decide it.
    const pairs = []
    const runs = { floor: [plain, 'plain'], oracle: [withOracle, 'oracle'] }
    for (let i = 0; i < PAIRS; i++) {
      const pair = {}
      for (const which of i % 2 === 0 ? ['floor', 'oracle'] : ['oracle', 'floor']) pair[which] = await replayRate(root, ...runs[which])
      pair.ratio = pair.oracle / pair.floor
      pairs.push(pair)
    }
    pairs.sort((a, b) => a.ratio - b.ratio)
    const { floor, oracle, ratio } = pairs[PAIRS >> 1]
    await plain.close()
    await withOracle.close()
    if (process.env.BENCH_PAIRS_OUT) console.log(pairs.map((p) => p.ratio.toFixed(3)).join(' '))
    printTable(`Oracles (${os.cpus().length} cores, Node ${process.version})`, [
      [`replay of ${fmt(CALLS)} calls, awaiting a plain value (floor)`, `${fmt(floor)} calls/s`, ''],
      [`replay of ${fmt(CALLS)} calls, one oracle use each`, `${fmt(oracle)} calls/s (${fmt(ratio, 2)} of the floor, median of ${PAIRS} pairs)`, '>= 0.90 of the floor']
    ])
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
