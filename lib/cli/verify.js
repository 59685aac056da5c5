'use strict'
// libvms verify DIR: replay a VM's call log in a fresh VM and compare the replica's log and files archive with
// the VM's. Exit 0 verified, 1 mismatch (tampering or a nondeterministic script), 2 unusable input.
const fs = require('node:fs')
const path = require('node:path')
const os = require('node:os')
const VM = require('../vm')
const CallLog = require('../call-log')
const DatArchive = require('../dat-archive')
const RPCClient = require('../rpc-client')
const { wsUrl, intOption } = require('./args')
const { readMeta, openLog, openArchive } = require('./vm-dir')
const Verifier = require('../verifier')
const { UsageError } = require('../errors')
const { VerifyReport } = require('./verify-report')
const { progressBar } = require('./progress')
const { interruptible } = require('./interrupt')
const { SWARM_OPTIONS, swarmOptions } = require('./swarm-options')
const { isLogUrl, fetchByLogUrl } = require('./verify-dat')
const { swarmConfig } = require('../swarm')
const { describeHead } = require('../snapshot')
const { follow } = require('./follow')

// Errors that mean "the data does not check out" (exit 1), as opposed to "cannot be read at all" (exit 2).
const MISMATCH = new Set(['VERIFICATION_FAILED', 'INVALID_SIGNATURE', 'VERIFICATION_MISMATCH', 'INVALID_PROOF', 'FORK'])

class Mismatch extends Error {}

/**
 * Audit a running host: ask it over RPC which log and archive its VM has and where it replicates them, then fetch
 * both (every block verified against the host's signed trees) into `dir`.
 */
async function fetchRemote (target, dir, timeout, swarm, say, err = process.stderr) {
  const url = wsUrl(target)
  const client = new RPCClient({ timeout })
  let info
  try {
    await client.connect(url)
    info = client.backendInfo
  } catch (e) {
    throw new UsageError(`cannot reach ${url}: ${e.message || JSON.stringify(e)}`)
  } finally {
    await client.close()
  }
  if (!info || typeof info.callLogUrl !== 'string' || typeof info.filesArchiveUrl !== 'string') {
    throw new UsageError(`${url} did not name a call log and a files archive in its handshake`)
  }
  // With --swarm/--bootstrap the log and archive are also looked up on the DHT: the only way when the host names
  // no replication port (it may serve them through the DHT only).
  const dht = swarmConfig(swarm)
  if (!info.replicationPort && !dht) {
    throw new UsageError(`${url} does not replicate its VM's data (no replicationPort in its handshake); look it up with --swarm or --bootstrap HOST:PORT`)
  }
  say(`Verifying ${url}`)
  const from = [info.replicationPort && `${new URL(url).hostname}:${info.replicationPort}`, dht && 'the Hyperswarm DHT'].filter(Boolean)
  say(`  fetching from ${from.join(' and ')}...`)
  // The RPC handshake registered the host's replication endpoint as a peer for both fetches.
  // The log is fetched into memory: an audit copy need not survive, and on disk every fetched block is synced.
  const bar = progressBar(err, { label: 'fetching' })
  let log
  try {
    log = await CallLog.fetch(info.callLogUrl, null, { timeout, ...swarm, _onProgress: (held, total) => { if (total) bar.update(held, total) } })
  } finally {
    bar.stop()
  }
  let length
  let head = null
  try {
    // The snapshot, a signed head held before the archive is fetched: the archive then holds at least what entry
    // L-1 names.
    head = log.length > 0 ? await Verifier.signedHead(log) : null
    length = head ? head.length : 0
    // A snapshot (not live): the host may write on while the replay runs.
    const archive = new DatArchive(info.filesArchiveUrl, { localPath: path.join(dir, 'files'), timeout, live: false, ...swarm })
    await archive.ready()
    return { log, archive, filesUrl: info.filesArchiveUrl, length, head }
  } catch (e) {
    await log.close()
    throw e
  }
}

/**
 * The files version entry `index` names: a call entry's `filesVersion`, the archive's version once that call was
 * done. Undefined for other entries (init, restart), after which the archive is compared as fetched.
 */
async function versionNamedAt (log, index) {
  const entry = index >= 1 ? await log.get(index) : null
  if (entry && entry.type === 'call' && entry.result && Number.isSafeInteger(entry.result.filesVersion)) return entry.result.filesVersion
  return undefined
}

function isRemote (target) {
  return /^(wss?|dat|https?):\/\//.test(target) || (!fs.existsSync(target) && /^[\w.-]+:\d+(\/|$)/.test(target))
}

/** A factory's log made before provisions were recorded cannot be replayed: say so, do not call it a mismatch. */
function isFactory (target, remote, init) {
  if (!remote && fs.existsSync(path.join(target, 'vms.json'))) return true
  return /\bSystem\s*\.\s*vms\b/.test(init.code || '')
}

module.exports = {
  summary: 'replay a VM\'s call log and check its results and files (exit 0 verified, 1 mismatch, 2 unusable, 3 old factory log)',
  usage: 'Usage: libvms verify DIR|ws://HOST:PORT/PATH|dat://LOGKEY [--log URL] [--files URL] [--dir REPLICA_DIR] [--timeout MS] [--json|--quiet] [--swarm | --bootstrap HOST:PORT] [--follow [--follow-steps N]]',
  options: {
    log: { type: 'string', arg: 'URL', help: 'expected call log URL (mismatch if DIR holds another)' },
    files: { type: 'string', arg: 'URL', help: 'expected files archive URL (mismatch if DIR holds another)' },
    dir: { type: 'string', arg: 'DIR', help: 'keep the replica in this new directory (default: a temp dir, removed)' },
    timeout: { type: 'string', arg: 'MS', help: 'for a URL: give up connecting or fetching after this many ms (default 10000)' },
    json: { type: 'boolean', help: 'print only a summary object: {verdict, entries, replayed, timeMs, firstDivergence, problems, head}' },
    quiet: { type: 'boolean', short: 'q', help: 'no step lines or progress bar; print the summary object (as --json)' },
    follow: { type: 'boolean', help: 'a running host: after the audit, keep auditing new entries as they arrive, one line per step (Ctrl+C ends)' },
    'follow-steps': { type: 'string', arg: 'N', help: 'with --follow: stop after N steps (exit 0 if all verified)' },
    utp: { type: 'boolean' }, // NodeVMS 1.x; accepted, no effect
    'no-utp': { type: 'boolean' },
    ...SWARM_OPTIONS
  },
  more: [
    'DIR is a VM directory (as made by `libvms exec`); its VM must be stopped (the log is locked while it runs).',
    'URL (ws://HOST:PORT/PATH) audits a running host: the log and archive are fetched over the Hypercore protocol',
    'from the replication port its RPC handshake names (and, with --swarm/--bootstrap, from peers found on the DHT),',
    'every block verified, then replayed and compared.',
    'dat://LOGKEY audits a VM from its call log URL alone: the log is found on the Hyperswarm DHT (--swarm, or',
    '--bootstrap / LIBVMS_BOOTSTRAP for a private one), its init entry names the files archive, found the same way.',
    'On a terminal the replay shows a progress bar (counts, rate, ETA); Ctrl+C stops it and removes the replica.',
    'Exit code: 0 verified, 1 mismatch (first divergent entry / differing files printed), 2 unusable input,',
    '3 not replayable (a VM factory\'s log from before provisions were recorded; verify each VM\'s own dir), 130 Ctrl+C.'
  ].join('\n'),
  async run ({ positionals, values, io }) {
    const target = positionals[0]
    if (!target || positionals.length > 1) throw new UsageError('usage: libvms verify DIR|URL')
    const followSteps = values['follow-steps'] === undefined ? undefined : intOption(values, 'follow-steps', 0)
    if ((values.follow || followSteps !== undefined) && !(isRemote(target) || isLogUrl(target))) {
      throw new UsageError('--follow audits a running host (ws://... or dat://...): a VM directory is locked while its VM runs')
    }
    const report = new VerifyReport(io, { json: values.json, quiet: values.quiet })
    const say = (line) => report.say(line)
    // Temp folders this run made; Ctrl+C removes them however far the work got.
    const temps = []
    const interrupt = interruptible(io, temps)
    let log = null
    let archive = null
    let replica = null
    let filesUrl
    let length
    let head = null
    try {
      const remote = isRemote(target) || isLogUrl(target)
      if (remote) {
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-audit-'))
        temps.push(tmp)
        const timeout = intOption(values, 'timeout', 10000)
        const bars = report.summaryOnly ? null : io.err
        // A fetch cannot stop halfway; Ctrl+C during it removes the temp folder and exits at once.
        ;({ log, archive, filesUrl, length, head } = await interrupt.immediately(() => isLogUrl(target)
          ? fetchByLogUrl(target, tmp, timeout, swarmOptions(values), say, bars)
          : fetchRemote(target, tmp, timeout, swarmOptions(values), say, bars)))
      } else {
        const meta = readMeta(target)
        filesUrl = meta.url
        log = await openLog(target)
        archive = await openArchive(target, meta.url)
        say(`Verifying ${path.resolve(target)}`)
      }
      interrupt.check()
      // The snapshot L: a fetched log keeps following its host, so the audit replays and compares exactly entries
      // 0..L-1, and the archive at the version entry L-1 names. (A local VM's log is locked: it cannot grow.)
      const L = length === undefined ? log.length : length
      report.entries = L
      // The signed head held for the snapshot (fork, length, tree hash, the log key's signature): everything below
      // is compared against it, and the log must still hold its tree at the end.
      if (!head && L > 0) head = await Verifier.signedHead(log)
      report.head = head
      say(`  call log      ${log.url} (snapshot at length ${L})`)
      if (head) say(`  held ${describeHead(head)} (checked against the log's key)`)

      if (values.log && values.log !== log.url) throw new Mismatch(`the call log is ${log.url}, not the expected ${values.log}`)
      if (values.files && values.files !== archive.url) throw new Mismatch(`the files archive is ${archive.url}, not the expected ${values.files}`)
      if (L === 0) throw new UsageError(`${target} holds no VM call log (it is empty)`)

      // Every stored block of the log and of both archive cores against its signed tree, before any replay.
      await interrupt.immediately(() => log.verify()) // read-only: nothing to close first
      interrupt.check()
      say('✓ Call log signature and entries check out')
      await Verifier.checkArchiveStorage(archive)
      say('✓ Files archive: every stored block checks out')
      const version = await versionNamedAt(log, L - 1)
      if (version !== undefined && version > archive.version) {
        throw new Mismatch(`entry ${L - 1} names files version ${version}, but the archive holds only version ${archive.version}`)
      }
      // A running host writes on: compare its archive as entry L-1 left it. A stopped VM's directory is compared
      // whole, so writes that no entry accounts for show up as a mismatch.
      const atSnapshot = remote && version !== undefined
      const hostFiles = atSnapshot && version !== archive.version ? archive.checkout(version) : archive
      say(`  files archive ${archive.url} (version ${atSnapshot ? `${version}, named by entry ${L - 1}` : archive.version})`)

      const init = await log.get(0)
      if (!init || init.type !== 'init') throw new UsageError(`${target} holds no VM call log (entry 0 is not an init entry)`)
      if (init.filesArchiveUrl !== filesUrl) throw new Mismatch(`the call log names files archive ${init.filesArchiveUrl}, but the VM serves ${filesUrl}`)
      // A factory's log made before System.vms was an oracle (its init entry names no addAPI members) cannot be
      // replayed: its provisions were not recorded.
      if (init.apis === undefined && isFactory(target, remote, init)) {
        report.note = 'VM factory: its call log predates recorded provisions and is not replayable'
        io.err.write([
          'libvms: this is a VM factory whose log predates recorded provisions. Its call log is signed and intact,',
          '  but its provisions (fresh ids and keys) were not recorded, so it cannot be replayed. Nothing was found wrong.',
          `  Each VM it provisioned verifies on its own: libvms verify ${remote ? 'ws://HOST:PORT/<id>' : path.join(target, '<id>')}`
        ].join('\n') + '\n')
        return report.finish(3)
      }

      if (values.dir && fs.existsSync(values.dir)) throw new UsageError(`--dir ${values.dir} already exists; the replica needs a new directory`)
      let replicaDir = values.dir
      if (!replicaDir) {
        const t = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-replay-'))
        temps.push(t)
        replicaDir = path.join(t, 'replica')
      }
      const onProgress = report.onProgress
      replica = await VM.fromCallLog(log, { filesArchiveUrl: filesUrl }, {
        dir: replicaDir,
        length: L,
        head,
        // Throwing here is how Ctrl+C stops a replay: fromCallLog closes the replica and rethrows.
        onProgress (done, total) { interrupt.check(); onProgress(done, total) }
      })
      report.endProgress()
      interrupt.check()
      say(`  replayed ${report.replayed}/${L} entries`)

      let mismatch = false
      await Verifier.compareLogs(log, replica.callLog, { length: L }).then(
        () => say('✓ Call log: the replay produced the same entries'),
        (e) => {
          if (e.code !== 'VERIFICATION_MISMATCH') throw e
          mismatch = true
          report.problem(`Call log mismatch: ${e.message}`)
          if (e.index !== undefined) {
            report.divergence(e.index, e.a, e.b)
            report.problem(`  entry ${e.index} in the log:    ${JSON.stringify(e.a)}\n  entry ${e.index} in the replay: ${JSON.stringify(e.b)}`)
          }
        })
      interrupt.check()
      await Verifier.compareArchives(hostFiles, replica.filesArchive).then(
        () => say('✓ Files archive: the replay produced the same files'),
        (e) => { if (e.code !== 'VERIFICATION_MISMATCH') throw e; mismatch = true; report.problem(`Files archive mismatch: ${e.message}`) })
      // The host's log still holds the history the held head signed (a different tree at L is a fork: ForkError).
      await Verifier.checkHead(head, log)
      say(`✓ Signed head at length ${head.length} still held by the log`)
      if (mismatch || !(values.follow || followSteps !== undefined)) return report.finish(mismatch ? 1 : 0)
      // The incremental audit: each new batch of entries on a new signed head, into the same replica.
      return report.finish(await follow({
        log,
        replica,
        head,
        filesUrl,
        dir: temps[0],
        timeout: intOption(values, 'timeout', 10000),
        steps: followSteps,
        report,
        interrupt,
        versionNamedAt,
        swarm: isLogUrl(target) ? swarmOptions(values) : {}
      }))
    } catch (e) {
      report.endProgress()
      if (interrupt.interrupted) return report.finish(interrupt.code)
      if (e instanceof Mismatch || MISMATCH.has(e.code)) {
        // A stored block that fails its signed tree is named as a block of the core the message names.
        const unit = e.code === 'VERIFICATION_FAILED' ? 'block' : 'entry'
        const where = e.index !== undefined && !(e instanceof Mismatch) ? ` (${unit} ${e.index})` : ''
        if (e.index !== undefined && !(e instanceof Mismatch) && unit === 'entry') report.divergence(e.index)
        report.problem(e.message.split('\n').map((l) => l + where).join('\n'))
        return report.finish(1)
      }
      throw e
    } finally {
      if (replica) await replica.close()
      if (archive) await archive.close() // its checkouts with it
      if (log) await log.close()
      for (const t of temps) fs.rmSync(t, { recursive: true, force: true })
      interrupt.dispose()
    }
  }
}
