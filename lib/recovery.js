'use strict'
// Crash recovery of a VM directory: the files archive must hold exactly the effects of the calls in the durable call
// log. Archive writes are durable before their call's entry is, so after a crash the archive may be ahead of the
// log, never behind; reopening rolls it back (a Hypercore truncation) to the version the log's last call names.
const fs = require('node:fs')
const path = require('node:path')
const { StorageCorruptError } = require('./errors')

/**
 * The archive version the log accounts for: the `filesVersion` of its last call entry, or 1 (the `/dat.json` a new
 * VM writes before its init entry) when it has none. Reads backwards from the end: only the trailing non-call
 * entries (restarts) are read.
 */
async function loggedFilesVersion (callLog) {
  for (let i = callLog.length - 1; i >= 0; i--) {
    const e = await callLog.get(i)
    if (e && e.type === 'call' && e.result && Number.isSafeInteger(e.result.filesVersion)) return e.result.filesVersion
    if (e && e.type === 'init') break
  }
  return 1
}

/**
 * Roll `archive` back to what `callLog` accounts for. Resolves with null when nothing was undone, else
 * `{filesVersion, writesUndone, contentBlocks}`.
 */
async function recoverFiles (callLog, archive) {
  const target = await loggedFilesVersion(callLog)
  const at = archive.version
  if (at < target) {
    throw new StorageCorruptError(`the files archive is at version ${at}, behind the ${target} its call log names`)
  }
  if (at === target) return null
  const { writes, contentBlocks } = await archive._truncate(target)
  return { filesVersion: target, writesUndone: writes, contentBlocks }
}

/**
 * A directory with our archive or log but no meta.json holds a create that a crash cut short (meta.json is written
 * last, so its deploy never resolved and nothing was acknowledged): remove those two stores so it can start afresh.
 * Returns whether anything was removed. Only folders holding our own files are touched.
 */
function clearUnfinishedCreate (dir, filesDir, logDir) {
  let removed = false
  for (const [sub, marker] of [[filesDir, 'primary-key'], [logDir, 'oplog']]) {
    const p = path.join(dir, sub)
    if (fs.existsSync(path.join(p, marker))) {
      fs.rmSync(p, { recursive: true, force: true })
      removed = true
    }
  }
  return removed
}

module.exports = { loggedFilesVersion, recoverFiles, clearUnfinishedCreate }
