'use strict'
// The entries a replay reads, as `callLog.entries()` streams them, except that a call entry's oracle records are
// left as the log's JSON text: the replay hands that text to the script's worker (which parses it to serve the
// uses) and, when every record was served, writes it into the replica's entry as it is. The main thread, which
// bounds a replay's speed, then neither parses the records nor writes them out again.
const CallLog = require('./call-log')
const { EncodingError } = require('./errors')
const { RECORDS, Recorded } = require('./sandbox/oracles')

const MARK = ',"oracles":['

/** Entries in [start, end) of `callLog`, each read verified; see above for the records. */
function replayEntries (callLog, { start = 0, end } = {}) {
  return callLog._decoded(start, end, (data, seq, from, to) => parseEntry(data, from, to, seq))
}

/**
 * One entry's text, parsed. A call entry (not a limit stop, which a replay copies whole) whose last member is
 * `"oracles":[...]` is parsed without that member, and its text is kept under RECORDS. That split is sound: the text
 * before the mark with `}` added parses as an object only if the mark is a member of the top-level object, and the
 * rest is then that member's value. Whether the value is JSON the worker finds when it parses it (an entry that is
 * not JSON fails the replay, as when reading it whole). Any other text is parsed whole.
 */
function parseEntry (data, from, to, seq) {
  const text = data.toString('utf8', from, to)
  if (text.endsWith(']}')) {
    const at = text.lastIndexOf(MARK)
    if (at > 0) {
      const headText = text.slice(0, at) + '}'
      let head
      try {
        head = JSON.parse(headText)
      } catch (_) {}
      if (head !== null && typeof head === 'object' && head.type === 'call' && head.call && head.stopped === undefined &&
          !Object.hasOwn(head, 'oracles')) {
        // The entry's bytes are kept for the replica (see `enqueueReplayed`) unless they are not all UTF-8.
        const whole = text.indexOf('\ufffd') === -1
        const original = whole ? { head: headText, data, from, to } : undefined
        head[RECORDS] = new Recorded(text.slice(at + MARK.length - 1, -1), undefined, original)
        return head
      }
    }
  }
  try {
    return JSON.parse(text)
  } catch (e) {
    throw new EncodingError(`entry ${seq} is not JSON: ${e.message}`, { index: seq })
  }
}

/**
 * Queue a replayed call's entry in the replica's log. `entry` is what the replay made, without its `oracles`
 * (which are last); `rec` (oracles.js `Recorded`) holds every record of the log's entry, all served. When the rest of
 * the entry is also what the log holds, the log's own bytes are appended; otherwise the entry is written out with
 * the records' text as the log holds it. Either way the entry is what `enqueueCallJSON` would write, up to the
 * records' formatting: compareLogs compares canonical JSON.
 */
function enqueueReplayed (callLog, entry, argsJSON, resJSON, rec) {
  const text = CallLog.callEntryJSON(entry, argsJSON, resJSON)
  const original = rec.original
  if (original && text === original.head) return callLog._enqueueBlock(original.data.subarray(original.from, original.to))
  return callLog._enqueueBlock(Buffer.from(text.slice(0, -1) + MARK.slice(0, -1) + rec.rawJSON + '}'))
}

module.exports = { replayEntries, parseEntry, enqueueReplayed }
