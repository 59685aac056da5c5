'use strict'
// What `libvms verify` prints, apart from deciding anything: the step lines and problems, the replay's progress
// bar (on a terminal), and for --json / --quiet a single summary object on stdout instead of the step lines.
const { progressBar } = require('./progress')

const VERDICTS = { 0: 'verified', 1: 'not verified', 3: 'not replayable', 130: 'interrupted', 143: 'interrupted' }

class VerifyReport {
  constructor (io, { json = false, quiet = false } = {}) {
    this.io = io
    this.summaryOnly = json || quiet
    this.started = Date.now()
    this.entries = null
    this.replayed = 0
    this.firstDivergence = null
    this.problems = []
    this.note = null
    this.head = null // the signed head held for the snapshot
    this._bar = progressBar(io.err, { label: 'replaying', enabled: !this.summaryOnly && Boolean(io.err.isTTY) })
  }

  /** A step line on stdout (not in summary mode). */
  say (line) {
    if (!this.summaryOnly) this.io.out.write(line + '\n')
  }

  /** onProgress for VM.fromCallLog: counts are log entries, init included. */
  get onProgress () {
    return (done, total) => {
      this.replayed = done
      this._bar.update(done, total)
    }
  }

  endProgress () { this._bar.stop() }

  /** A problem found: on stderr, each line marked ✗ (always, so scripts see why). */
  problem (text) {
    this.problems.push(text)
    for (const line of text.split('\n')) this.io.err.write(`✗ ${line}\n`)
  }

  divergence (index, logEntry, replayEntry) {
    if (!this.firstDivergence) this.firstDivergence = { entry: index, log: logEntry ?? null, replay: replayEntry ?? null }
  }

  /** The closing line (or the summary object) for exit code `code`; returns `code`. */
  finish (code) {
    this._bar.stop()
    const verdict = VERDICTS[code] || 'error'
    if (this.summaryOnly) {
      this.io.out.write(JSON.stringify(this.summary(verdict)) + '\n')
    } else if (code === 0) {
      this.say('VERIFIED')
    } else if (code === 1) {
      this.say('NOT VERIFIED')
    } else if (code === 3) {
      this.say('NOT REPLAYABLE (nothing was found wrong; see the note above)')
    }
    return code
  }

  summary (verdict) {
    return {
      verdict,
      entries: this.entries,
      replayed: this.replayed,
      timeMs: Date.now() - this.started,
      firstDivergence: this.firstDivergence,
      problems: this.problems,
      ...(this.head ? { head: this.head } : {}),
      ...(this.note ? { note: this.note } : {})
    }
  }
}

module.exports = { VerifyReport }
