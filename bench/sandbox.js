'use strict'
// Sandbox benchmark: what one worker thread per VM costs. The RSS of 100 idle VMs provisioned by a factory, and the
// round trip into a VM's worker and back (no log), sequential and with many calls in flight.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { VMFactory } = require('..')
const { Sandbox, resolveLimits } = require('../lib/sandbox')
const { time, fmt, printTable } = require('./table')

const MB = 1024 * 1024

async function main () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-bench-sandbox-'))
  const rows = []
  try {
    const sandbox = new Sandbox({ code: 'let n = 0\nexports.inc = (by) => (n += by)', limits: resolveLimits(), files: () => null, apis: new Map() })
    await sandbox.start()
    for (let i = 0; i < 1000; i++) await sandbox.call('inc', '[1]')
    const SEQ = 5000
    const seq = await time(async () => { for (let i = 0; i < SEQ; i++) await sandbox.call('inc', '[1]') })
    rows.push(['a call into a VM\'s worker and back (no log), sequential', `${fmt(seq / SEQ * 1e6, 1)} µs`, ''])
    const MANY = 50000
    const many = await time(() => Promise.all(Array.from({ length: MANY }, () => sandbox.call('inc', '[1]'))))
    rows.push([`the same, ${fmt(MANY)} in flight`, `${fmt(MANY / many)} calls/s`, ''])
    sandbox.close()

    global.gc && global.gc()
    const before = process.memoryUsage.rss()
    const factory = new VMFactory('exports.init = () => {}', { maxVMs: 100 })
    await factory.deploy({ dir: path.join(root, 'factory'), title: 'bench' })
    const started = await time(async () => {
      for (let i = 0; i < 100; i++) await factory.provisionVM({ code: 'let n = 0\nexports.inc = () => ++n' })
    })
    await new Promise((resolve) => setTimeout(resolve, 1000))
    global.gc && global.gc()
    const rss = process.memoryUsage.rss()
    rows.push(['100 idle VMs in one factory: process RSS', `${fmt(rss / MB)} MB (+${fmt((rss - before) / MB)} MB for the VMs)`, '< 1 GB'])
    rows.push(['provisioning a VM (deploy, worker start, init)', `${fmt(started / 100 * 1000, 1)} ms`, ''])
    await factory.close()
    printTable(`Sandbox (${os.cpus().length} cores, Node ${process.version})`, rows)
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
