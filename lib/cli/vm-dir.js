'use strict'
// Open what a VM directory holds (meta.json, call-log/, files/) for the commands that read it (log, verify).
// Anything missing or unreadable is a UsageError or a storage error, which the CLI reports as unusable input.
const fs = require('node:fs')
const path = require('node:path')
const CallLog = require('../call-log')
const DatArchive = require('../dat-archive')
const { UsageError } = require('../errors')

function checkDir (dir) {
  if (!dir) throw new UsageError('a VM directory is required')
  let st
  try {
    st = fs.statSync(dir)
  } catch (e) {
    throw new UsageError(`${dir}: no such directory`)
  }
  if (!st.isDirectory()) throw new UsageError(`${dir} is not a directory`)
}

/** The VM's meta.json ({title, url}); a UsageError when `dir` is not a VM directory. */
function readMeta (dir) {
  checkDir(dir)
  let meta
  try {
    meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'))
  } catch (e) {
    throw new UsageError(`${dir} is not a VM directory (${e.code === 'ENOENT' ? 'no meta.json' : 'meta.json is not valid JSON'})`)
  }
  if (!meta || typeof meta.url !== 'string') throw new UsageError(`${dir} is not a VM directory (meta.json names no files archive)`)
  return meta
}

/** Open the call log of a VM directory (or a call-log directory itself). */
async function openLog (dir) {
  checkDir(dir)
  const logDir = fs.existsSync(path.join(dir, 'call-log')) ? path.join(dir, 'call-log') : dir
  try {
    return await CallLog.open(logDir)
  } catch (e) {
    if (e.code === 'STORAGE_LOCKED') e.message = `${dir} is in use (is its VM running? stop it first): ${e.message}`
    if (e.code === 'NOT_A_CORE') e.message = `${dir} holds no call log: ${e.message}`
    throw e
  }
}

async function openArchive (dir, url) {
  const archive = new DatArchive(url, { localPath: path.join(dir, 'files') })
  await archive.ready()
  return archive
}

module.exports = { readMeta, openLog, openArchive, checkDir }
