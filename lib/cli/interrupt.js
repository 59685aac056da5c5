'use strict'
// Ctrl+C (or SIGTERM) during long work: say so at once, let the work stop at its next check (so it closes what it
// opened), and exit 128+signal. A second signal, or the first during work that cannot stop halfway and writes
// nothing worth closing (`immediate`: a fetch into a temp folder), removes the temp folders and exits at once.
const fs = require('node:fs')

const CODES = { SIGINT: 130, SIGTERM: 143 }

class InterruptedError extends Error {
  constructor (signal) {
    super(`interrupted by ${signal}`)
    this.name = 'InterruptedError'
    this.code = 'INTERRUPTED'
  }
}

/** Catch SIGINT/SIGTERM until dispose(); `temps` (an array the caller fills) are removed on a second signal. */
function interruptible (io, temps = []) {
  let signal = null
  let immediate = false
  const on = (sig) => {
    const first = signal === null
    if (first) {
      signal = sig
      io.err.write(`${io.err.isTTY ? '\n' : ''}libvms: ${sig === 'SIGINT' ? 'interrupted (Ctrl+C)' : sig}: stopping and removing temporary files...\n`)
      if (!immediate) return
    }
    for (const t of temps) fs.rmSync(t, { recursive: true, force: true })
    if (!first) io.err.write(`libvms: ${sig} again: exiting now\n`)
    process.exit(CODES[signal] || 130)
  }
  process.on('SIGINT', on)
  process.on('SIGTERM', on)
  return {
    get interrupted () { return signal !== null },
    /** The exit code for the signal received (130 for Ctrl+C). */
    get code () { return CODES[signal] || 130 },
    check () { if (signal !== null) throw new InterruptedError(signal) },
    /** Run `fn` (a promise-returning step) in immediate mode. */
    async immediately (fn) {
      immediate = true
      try {
        return await fn()
      } finally {
        immediate = false
      }
    },
    dispose () {
      process.off('SIGINT', on)
      process.off('SIGTERM', on)
    }
  }
}

module.exports = { interruptible, InterruptedError, CODES }
