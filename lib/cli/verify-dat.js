'use strict'
// `libvms verify dat://LOGKEY`: audit a VM from its call log URL alone. The log is found by its discovery key
// (Hyperswarm DHT, or LIBVMS_PEERS), its init entry names the files archive, which is found and fetched the same
// way; the caller then replays and compares as for any other audit.
const path = require('node:path')
const CallLog = require('../call-log')
const DatArchive = require('../dat-archive')
const Verifier = require('../verifier')
const { swarmConfig } = require('../swarm')
const { resolvePeers } = require('../peers')
const { UsageError } = require('../errors')
const { progressBar } = require('./progress')

const isLogUrl = (target) => /^dat:\/\//i.test(target)

/** Fetch the log `url` and the archive its init entry names (into `dir`): { log, archive, filesUrl }. */
async function fetchByLogUrl (url, dir, timeout, swarm, say, err = process.stderr) {
  if (!swarmConfig(swarm) && resolvePeers().length === 0) {
    throw new UsageError('verify dat://... needs a way to find peers: --swarm, --bootstrap HOST:PORT, LIBVMS_BOOTSTRAP or LIBVMS_PEERS')
  }
  say(`Verifying ${url}`)
  say('  looking up the call log...')
  // Into memory: an audit copy need not survive.
  const bar = progressBar(err, { label: 'fetching' })
  let log
  try {
    log = await CallLog.fetch(url, null, { timeout, ...swarm, _onProgress: (held, total) => { if (total) bar.update(held, total) } })
  } finally {
    bar.stop()
  }
  try {
    say(`  fetched ${log.length} entries`)
    // The snapshot, a signed head held before the archive is fetched: the archive then holds at least what entry
    // L-1 names.
    const head = log.length > 0 ? await Verifier.signedHead(log) : null
    const length = head ? head.length : 0
    const init = log.length > 0 ? await log.get(0) : null
    if (!init || init.type !== 'init' || typeof init.filesArchiveUrl !== 'string') {
      throw new UsageError(`${url} holds no VM call log (entry 0 is not an init entry naming a files archive)`)
    }
    say(`  looking up the files archive ${init.filesArchiveUrl}...`)
    // A snapshot (not live): the host may write on while the replay runs.
    const archive = new DatArchive(init.filesArchiveUrl, { localPath: path.join(dir, 'files'), timeout, live: false, ...swarm })
    await archive.ready()
    return { log, archive, filesUrl: init.filesArchiveUrl, length, head }
  } catch (e) {
    await log.close()
    throw e
  }
}

module.exports = { isLogUrl, fetchByLogUrl }
