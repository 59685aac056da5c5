'use strict'
// Verifier: does a replay tell the same story as the host? Both comparisons run in Rust and stream their inputs.
const native = require('./native')
const CallLog = require('./call-log')
const DatArchive = require('./dat-archive')
const { BadArgumentError, VerificationError, ForkError, wrapNative } = require('./errors')

// Paths quoted in an archive mismatch message (the error object carries all of them).
const MESSAGE_PATHS = 10

class Verifier {
  /**
   * Resolves if both logs hold the same entries (entry 0: same type and code; later entries: equal as canonical
   * JSON). Otherwise throws a VerificationError with `index` (the first divergent entry) and `a` / `b` (the two
   * entries there, `undefined` where one log has ended). `opts.length`: compare only the first `length` entries of
   * `a` (the snapshot an audit fixed, while the host's log may grow).
   */
  static async compareLogs (a, b, { length } = {}) {
    const [na, nb] = [liveLog(a, 'a'), liveLog(b, 'b')]
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) {
      throw new BadArgumentError('compareLogs: length must be a non-negative integer')
    }
    try {
      // A signed VM's log: every call's signature and sequence number, first (crates/auth; a no-op in debug mode).
      // `a` is the log under audit; a replay (`b`) has a key of its own, and its entries must equal `a`'s anyway.
      await a._audit(length)
      if (b.key.equals(a.key)) await b._audit(length === undefined ? b.length : Math.min(length, b.length))
      await wrapNative(() => native.compareLogs(na, nb, length))
    } catch (e) {
      if (!(e instanceof VerificationError) || e.index === undefined) throw e
      e.a = await entryOrUndefined(a, e.index)
      e.b = await entryOrUndefined(b, e.index)
      throw e
    }
  }

  /**
   * Checks every stored block of both of the archive's cores (metadata and content) against their signed trees.
   * Throws an IntegrityError (`VERIFICATION_FAILED`, `index` = the block) whose message names the core.
   */
  static async checkArchiveStorage (archive) {
    if (!(archive instanceof DatArchive)) throw new BadArgumentError('checkArchiveStorage: archive must be a DatArchive')
    const d = await archive._open()
    await wrapNative(() => d.verifyStorage())
  }

  /**
   * Resolves when `callLog` (the host's, a fetched replica or a local copy) holds the signed call that `receipt`
   * (`{index, length, fork, treeHash, signature, call}`) names, at `index`, under that signed head. Rejects with a
   * VerificationError otherwise, and with a ForkError (carrying both heads, `ours` and `theirs`) when the log's own
   * signed tree disagrees with the receipt's validly signed head: proof that the host rewrote history.
   */
  static async checkReceipt (receipt, callLog) {
    if (!(callLog instanceof CallLog)) throw new BadArgumentError('checkReceipt: callLog must be a CallLog')
    if (!receipt || typeof receipt !== 'object') throw new BadArgumentError('checkReceipt: receipt must be an object')
    const out = await wrapNative(() => native.checkReceipt(JSON.stringify(receipt), callLog._live()))
    if (out === null) return
    const { code, message, ours, theirs } = JSON.parse(out)
    if (code === 'FORK') throw new ForkError(message, { ours, theirs })
    throw new VerificationError(message)
  }

  /**
   * The log's current signed tree head `{length, fork, treeHash, signature}`, checked against the log's key: what an
   * audit holds for its snapshot (then `checkHead` proves the log still tells that history).
   */
  static async signedHead (callLog) {
    if (!(callLog instanceof CallLog)) throw new BadArgumentError('signedHead: callLog must be a CallLog')
    return JSON.parse(await wrapNative(() => native.signedHead(callLog._live())))
  }

  /**
   * Resolves when `callLog` still holds the tree `head` signed at its length (a head held earlier: an audit's
   * snapshot). Rejects with a ForkError (`ours`: the log's head now, `theirs`: the held one) when the log holds
   * another tree there (its key signed two histories), and with a VerificationError when the head is not signed by
   * the log's key or the log is now shorter than it.
   */
  static async checkHead (head, callLog) {
    if (!(callLog instanceof CallLog)) throw new BadArgumentError('checkHead: callLog must be a CallLog')
    if (!head || typeof head !== 'object') throw new BadArgumentError('checkHead: head must be an object')
    const out = await wrapNative(() => native.checkHead(JSON.stringify(head), callLog._live()))
    if (out === null) return
    const { code, message, ours, theirs } = JSON.parse(out)
    if (code === 'FORK') throw new ForkError(message, { ours, theirs })
    throw new VerificationError(message)
  }

  /**
   * Whether two heads (`{length, fork, treeHash, signature}`, e.g. two receipts) are both validly signed by `key`
   * (the log's key, a Buffer) with the same length and fork and different tree hashes: a fork.
   */
  static isFork (key, a, b) {
    return wrapNative(() => native.isFork(key, JSON.stringify(a), JSON.stringify(b)))
  }

  /**
   * Resolves if both archives hold the same files with the same content (`/dat.json` ignored). Otherwise throws a
   * VerificationError with `added`, `removed` and `changed` (paths, from `a` to `b`).
   */
  static async compareArchives (a, b) {
    for (const [arch, name] of [[a, 'a'], [b, 'b']]) {
      if (!(arch instanceof DatArchive)) throw new BadArgumentError(`compareArchives: ${name} must be a DatArchive`)
    }
    const [da, db] = [await a._open(), await b._open()]
    // A sparse fetched archive holds only what was read so far: the comparison reads everything.
    await Promise.all([a.download('/'), b.download('/')])
    const diff = await wrapNative(() => native.NativeDrive.diff(da, db))
    const { added, removed, changed } = diff
    if (added.length + removed.length + changed.length === 0) return
    const parts = []
    for (const [label, paths] of [['added', added], ['removed', removed], ['changed', changed]]) {
      if (!paths.length) continue
      const shown = paths.slice(0, MESSAGE_PATHS).join(', ')
      parts.push(`${label}: ${shown}${paths.length > MESSAGE_PATHS ? ` and ${paths.length - MESSAGE_PATHS} more` : ''}`)
    }
    throw new VerificationError(`files archives differ (${parts.join('; ')})`, { added, removed, changed })
  }
}

function liveLog (log, name) {
  if (!(log instanceof CallLog)) throw new BadArgumentError(`compareLogs: ${name} must be a CallLog`)
  return log._live()
}

async function entryOrUndefined (log, index) {
  if (index >= log.length) return undefined
  try {
    return await log.get(index)
  } catch {
    return await log.get(index, { valueEncoding: 'binary' }).catch(() => undefined)
  }
}

module.exports = Verifier
