'use strict'
// Runs async jobs strictly one at a time, in the order they were pushed. A VM's calls go through one of these,
// so a call that awaits timers finishes before the next one starts, however the calls arrive.

class SerialQueue {
  constructor () {
    this._tail = Promise.resolve()
    this.pending = 0
  }

  /** Queue `job` (an async function); resolves or rejects with its outcome. */
  push (job) {
    this.pending++
    const run = this._tail.then(job)
    // The chain continues whatever the job's outcome; the caller sees the outcome through `run`.
    this._tail = run.then(done, done)
    const self = this
    function done () { self.pending-- }
    return run
  }

  /** Resolves once every job queued so far has finished. */
  drain () {
    return this._tail
  }
}

module.exports = SerialQueue
