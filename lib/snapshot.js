'use strict'
// An audit's snapshot of a log that may keep growing: a signed tree head held for it (length, fork, tree hash and
// the log key's signature), so that what was replayed and compared is exactly the history that head signed, and
// a host that later serves another tree at that length is caught (a fork, proved by the two heads).
const Verifier = require('./verifier')
const { BadArgumentError } = require('./errors')

/** The length a replay covers: `length`, else the held `head`'s, else the log's now. Synchronous: fixed at once. */
function snapshotLength (callLog, length, head) {
  if (head !== undefined && (!head || typeof head !== 'object' || !Number.isSafeInteger(head.length) || head.length < 1)) {
    throw new BadArgumentError('head must be a signed head {length, fork, treeHash, signature}')
  }
  if (length === undefined) return head ? head.length : callLog.length
  if (head && length > head.length) throw new BadArgumentError(`length ${length} is past the held head's length ${head.length}`)
  return length
}

/**
 * The head to hold: `head` as given, checked against the log now (signed by its key, the same tree at its length),
 * or else the log's current signed head, which covers every shorter snapshot.
 */
async function holdHead (callLog, head) {
  if (head) {
    await Verifier.checkHead(head, callLog)
    return { length: head.length, fork: head.fork, treeHash: head.treeHash, signature: head.signature }
  }
  return Verifier.signedHead(callLog)
}

/** Short text naming a held head in a report. */
function describeHead (head) {
  return `signed head: length ${head.length}, fork ${head.fork}, tree hash ${head.treeHash}`
}

module.exports = { snapshotLength, holdHead, checkHead: Verifier.checkHead, describeHead }
