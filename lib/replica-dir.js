'use strict'
// What `VM.fromCallLog(log, urls, {dir})` does with a folder that already holds something. A replica made there by
// an earlier replay of the same log (its meta.json says `replicaOf: <log url>`) is derived data: it is removed and
// the log replayed afresh, so an audit script can run again in the same folder. Anything else is left alone and
// refused, saying what to do.
const fs = require('node:fs')
const path = require('node:path')

const CallLog = require('./call-log')
const { EntryAlreadyExistsError } = require('./errors')

/** @param {{meta: string, log: string, parts: string[]}} layout the VM folder's meta file, log folder and data folders */
async function clearReplica (dir, logUrl, layout) {
  const parts = layout.parts.filter((p) => fs.existsSync(path.join(dir, p)))
  let meta = null
  try {
    meta = JSON.parse(fs.readFileSync(path.join(dir, layout.meta), 'utf8'))
  } catch (e) {
    if (e.code !== 'ENOENT' && !(e instanceof SyntaxError)) throw e
  }
  if (!meta && parts.length === 0) return
  if (!meta || meta.replicaOf !== logUrl) {
    const what = meta && meta.replicaOf ? `a replica of another log (${meta.replicaOf})` : 'a VM that is not a replica of this log'
    throw new EntryAlreadyExistsError(`${dir} already holds ${what}; replay into an empty or new folder, or remove it first`)
  }
  // Our own earlier replica of this log. Its data may still be open (then the removal below would pull it from
  // under a live VM): opening its log takes the same lock, and fails with StorageLockedError if it is held.
  const logDir = path.join(dir, layout.log)
  if (fs.existsSync(logDir)) await (await CallLog.open(logDir)).close()
  for (const p of [...parts, layout.meta]) fs.rmSync(path.join(dir, p), { recursive: true, force: true })
}

module.exports = { clearReplica }
