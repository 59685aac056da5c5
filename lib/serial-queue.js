'use strict'
// Runs async jobs strictly one at a time, in the order they were pushed. A VM's calls go through one of these,
// so a call that awaits timers finishes before the next one starts, however the calls arrive.

class SerialQueue {
  constructor () {
    this._tail = Promise.resolve()
    this.pending = 0
    this._waiters = [] // of `room`: {below, resolve}
  }

  /** Queue `job` (an async function); resolves or rejects with its outcome. */
  push (job) {
    this.pending++
    const run = this._tail.then(job)
    // The chain continues whatever the job's outcome; the caller sees the outcome through `run`.
    this._tail = run.then(done, done)
    const self = this
    function done () {
      self.pending--
      if (self._waiters.length > 0) self._wake()
    }
    return run
  }

  /**
   * Null when at most `below` jobs are pending, else a promise that resolves once that is so: a producer that keeps
   * the queue filled between two marks queues its next jobs while the ones before still run.
   */
  room (below) {
    if (this.pending <= below) return null
    return new Promise((resolve) => this._waiters.push({ below, resolve }))
  }

  _wake () {
    const ready = this._waiters.filter((w) => this.pending <= w.below)
    if (ready.length === 0) return
    this._waiters = this._waiters.filter((w) => this.pending > w.below)
    for (const w of ready) w.resolve()
  }

  /** Resolves once every job queued so far has finished. */
  drain () {
    return this._tail
  }
}

module.exports = SerialQueue
