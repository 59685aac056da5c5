'use strict'
// Progress of long work (replaying a log, printing one) as a cli-progress bar with counts, rate and ETA, redrawn
// at most FPS times a second. Only on a terminal: off one it prints nothing, since the commands' own lines already
// say what happened and a log file should not fill up with bar frames.
const cliProgress = require('cli-progress')

const FPS = 10
// The bar moves in steps of 1/STEPS of the total: however slow the machine, a run redraws about STEPS times at most
// (cli-progress only redraws a changed line, and no more than FPS times a second).
const STEPS = 50

/**
 * A bar on `stream` labelled `label`, counting `unit`. `update(done, total)` as often as you like (the bar starts on
 * the first one); `stop()` draws the final state and ends the line. `enabled` defaults to `stream.isTTY`.
 */
function progressBar (stream, { label, unit = 'entries', enabled = Boolean(stream && stream.isTTY) } = {}) {
  if (!enabled) return { update () {}, stop () {}, get active () { return false } }
  let bar = null
  let started = 0
  let last = 0
  let shown = 0
  return {
    update (done, total) {
      last = done
      if (bar && done !== total && done - shown < total / STEPS) return
      shown = done
      if (!bar) {
        started = Date.now()
        bar = new cliProgress.SingleBar({
          stream,
          fps: FPS,
          // Redraws come from update() (throttled by cli-progress) and from its own timer; no SIGINT hook of its
          // own: the command decides what an interrupt prints.
          gracefulExit: false,
          hideCursor: false,
          barsize: 24,
          format: `  ${label} [{bar}] {value}/{total} ${unit} | {rate}/s | ETA {eta_formatted}`
        }, cliProgress.Presets.legacy)
        bar.start(total, done, { rate: 0 })
        return
      }
      if (bar.getTotal() !== total) bar.setTotal(total)
      bar.update(done, { rate: rate(done, started) })
    },
    stop () {
      if (!bar) return
      bar.update(last, { rate: rate(last, started) })
      bar.stop()
      bar = null
    },
    get active () { return bar !== null }
  }
}

function rate (done, since) {
  const secs = (Date.now() - since) / 1000
  return secs > 0 ? Math.round(done / secs) : 0
}

module.exports = { progressBar, FPS, STEPS }
