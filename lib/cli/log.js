'use strict'
// libvms log DIR: the entries of a VM's call log, one per line.
const { openLog } = require('./vm-dir')
const { intOption } = require('./args')
const { UsageError } = require('../errors')
const { progressBar } = require('./progress')

const MAX_SHOWN = 60 // characters of a value shown in the readable format

function short (value) {
  const text = value === undefined ? 'undefined' : JSON.stringify(value)
  return text.length > MAX_SHOWN ? text.slice(0, MAX_SHOWN - 1) + '…' : text
}

/** One readable line for a log entry. */
function formatEntry (seq, entry) {
  const head = `#${seq}`
  if (!entry || typeof entry !== 'object') return `${head} ${short(entry)}`
  switch (entry.type) {
    case 'init':
      return `${head} init  code ${Buffer.byteLength(entry.code || '')} bytes, files archive ${entry.filesArchiveUrl}`
    case 'restart':
      return `${head} restart${typeof entry.code === 'string' ? ` with new code (${Buffer.byteLength(entry.code)} bytes)` : ''}`
    case 'call': {
      const call = entry.call || {}
      const result = entry.result || {}
      const args = (call.args || []).map(short).join(', ')
      const who = call.userId !== undefined ? ` by ${JSON.stringify(call.userId)}` : ''
      const outcome = result.err !== undefined ? `threw ${result.err}` : result.res !== undefined ? `-> ${short(result.res)}` : '-> (nothing)'
      return `${head} call  ${call.methodName}(${args})${who} ${outcome}  [files v${result.filesVersion}]`
    }
    default:
      return `${head} ${entry.type || '?'}  ${short(entry)}`
  }
}

/** Resolves when `stream` can take more, or has failed or closed (the CLI reports nothing for EPIPE). */
function drained (stream) {
  return new Promise((resolve) => {
    const done = () => {
      for (const e of ['drain', 'close', 'error']) stream.off(e, done)
      resolve()
    }
    for (const e of ['drain', 'close', 'error']) stream.on(e, done)
  })
}

module.exports = {
  summary: 'print the entries of a VM\'s call log',
  usage: 'Usage: libvms log DIR [--from N] [--json]',
  options: {
    from: { type: 'string', arg: 'N', help: 'start at entry N (default 0)' },
    json: { type: 'boolean', help: 'one JSON object per line: {"seq": N, ...the entry}' }
  },
  more: 'DIR is a VM directory (as made by `libvms exec`) or a call-log directory. Its VM must not be running.',
  formatEntry,
  async run ({ positionals, values, io }) {
    if (positionals.length !== 1) throw new UsageError('usage: libvms log DIR')
    const from = intOption(values, 'from', 0)
    const log = await openLog(positionals[0])
    // Printing a large log to a file or a pipe: a bar on the terminal (stderr) says how far it got.
    const bar = progressBar(io.err, { label: 'printing', enabled: Boolean(io.err.isTTY) && !io.out.isTTY })
    // The reader went away (`libvms log DIR | head`): stop quietly, as Unix tools do. (A pipe stdout is not
    // destroyed by EPIPE; every later write fails again, so the error is what tells.)
    let gone = false
    const onError = () => { gone = true }
    io.out.on('error', onError)
    try {
      const start = Math.min(from, log.length)
      let seq = from
      for await (const entry of log.entries({ start })) {
        if (gone || io.out.destroyed || io.out.writableEnded) break
        const ok = io.out.write((values.json ? JSON.stringify(entry && typeof entry === 'object' ? { seq, ...entry } : { seq, value: entry }) : formatEntry(seq, entry)) + '\n')
        seq++
        bar.update(seq - start, log.length - start)
        // Wait for a slow reader instead of buffering the whole log in memory.
        if (!ok && !gone && !io.out.destroyed) await drained(io.out)
      }
    } finally {
      io.out.off('error', onError)
      bar.stop()
      await log.close()
    }
    return 0
  }
}
