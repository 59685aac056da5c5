'use strict'
// libvms verify --follow: after the first audit, keep auditing a running host's new entries as they arrive (the
// incremental audit). Each step holds the log's new signed head, checks that it extends the one held before (a
// host that signed another history is a fork), replays only the new entries into the same replica, compares the
// logs up to the new length and the archives at the version its last entry names, and prints one line.
const path = require('node:path')
const DatArchive = require('../dat-archive')
const Verifier = require('../verifier')
const { describeHead } = require('../snapshot')
const { UsageError } = require('../errors')

const POLL_MS = 100

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Follow until `steps` steps are done (forever when undefined) or Ctrl+C (interrupt.check throws). Resolves with
 * the exit code: 0 when every step verified, 1 at the first step that did not (its problem reported).
 */
async function follow ({ log, replica, head, filesUrl, dir, timeout, steps, report, interrupt, versionNamedAt, swarm }) {
  // The host's archive as it grows (the first audit's copy is a fixed snapshot). Peers are those the fetch used.
  const live = new DatArchive(filesUrl, { localPath: path.join(dir, 'files-live'), timeout, live: true, sparse: false, ...swarm })
  try {
    await live.ready()
    let held = head
    for (let step = 1; steps === undefined || step <= steps; step++) {
      while (log.length <= held.length) {
        interrupt.check()
        await sleep(POLL_MS)
      }
      interrupt.check()
      const next = await Verifier.signedHead(log)
      // The new tree must extend the held one: the same tree at the held length, signed by the same key.
      await Verifier.checkHead(held, log)
      await replica._replayMore(log, held.length, next.length)
      interrupt.check()
      const mismatch = await compareStep(log, replica, live, next, versionNamedAt, interrupt, timeout)
      if (mismatch) {
        report.problem(`step ${step} (entries ${held.length}..${next.length - 1}): ${mismatch}`)
        return 1
      }
      await Verifier.checkHead(next, log)
      report.entries = next.length
      report.head = next
      const line = { step, from: held.length, to: next.length - 1, head: next }
      if (report.summaryOnly) report.io.out.write(JSON.stringify(line) + '\n')
      else report.say(`✓ step ${step}: entries ${held.length}..${next.length - 1} replayed and compared (${describeHead(next)})`)
      held = next
    }
    return 0
  } finally {
    await live.close()
  }
}

/** Compare logs up to the new head and archives at the version its last entry names; a mismatch message or null. */
async function compareStep (log, replica, live, head, versionNamedAt, interrupt, timeout) {
  try {
    await Verifier.compareLogs(log, replica.callLog, { length: head.length })
  } catch (e) {
    if (e.code !== 'VERIFICATION_MISMATCH') throw e
    return `call log mismatch: ${e.message}`
  }
  const version = await versionNamedAt(log, head.length - 1)
  if (version === undefined) return null // a restart or init last: the next call entry names a version
  // The live copy catches up with the version the host's log already named.
  const until = Date.now() + timeout
  while (live.version < version) {
    interrupt.check()
    if (Date.now() > until) throw new UsageError(`the host's files archive did not reach version ${version} within ${timeout} ms`)
    await sleep(POLL_MS)
  }
  for (;;) {
    try {
      await Verifier.compareArchives(live.checkout(version), replica.filesArchive) // the live copy grows meanwhile
      return null
    } catch (e) {
      if (e.code === 'VERIFICATION_MISMATCH') return `files archive mismatch: ${e.message}`
      // The metadata arrived first; the content blocks that version names are still on their way.
      if (e.code !== 'OUT_OF_BOUNDS' || Date.now() > until) throw e
    }
    interrupt.check()
    await sleep(POLL_MS)
  }
}

module.exports = { follow }
