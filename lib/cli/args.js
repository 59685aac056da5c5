'use strict'
// Argument helpers shared by the commands: parseArgs with usage errors, and NodeVMS-style URL shorthands.
const { parseArgs } = require('node:util')
const { UsageError } = require('../errors')

// Every command takes these.
const COMMON = {
  help: { type: 'boolean', short: 'h', help: 'show this help' }
}

/** Parse `argv` against a command's options; unknown flags and bad values are UsageErrors. */
function parse (argv, options) {
  const spec = {}
  for (const [name, o] of Object.entries({ ...COMMON, ...options })) {
    spec[name] = { type: o.type }
    if (o.short) spec[name].short = o.short
    if (o.default !== undefined) spec[name].default = o.default
  }
  // A negative number (`call URL add -5 3`, `--from -1`) is a value, not an unknown option: parseArgs would refuse
  // it, so it is held out of its sight and put back afterwards.
  const held = []
  const args = argv.map((a) => NEGATIVE.test(a) ? `${HELD}${held.push(a) - 1}` : a)
  const restore = (v) => typeof v === 'string' && v.startsWith(HELD) ? held[Number(v.slice(HELD.length))] : v
  let parsed
  try {
    parsed = parseArgs({ args, options: spec, allowPositionals: true, strict: true })
  } catch (e) {
    throw new UsageError(e.message.replace(/\. To specify a positional.*$/s, '').split(HELD).join(''))
  }
  const values = {}
  for (const [k, v] of Object.entries(parsed.values)) values[k] = restore(v)
  return { values, positionals: parsed.positionals.map(restore) }
}

const NEGATIVE = /^-(\d|\.\d)/
const HELD = '\u0000held:'

/** `--name` as a non-negative integer (ports, counts). */
function intOption (values, name, fallback) {
  const raw = values[name]
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!/^\d+$/.test(String(raw)) || !Number.isSafeInteger(n)) throw new UsageError(`--${name} must be a non-negative integer, not ${raw}`)
  return n
}

/**
 * A VM's WebSocket URL from what users type: `ws://h:p/path` as is; `localhost:5555` -> `ws://localhost:5555/`
 * (local hosts default to ws, remote ones to wss, as nodevms did).
 */
function wsUrl (input) {
  if (!input) throw new UsageError('a URL is required (e.g. ws://127.0.0.1:5555/)')
  let url = input
  if (!/^wss?:\/\//.test(url)) {
    const local = /^(localhost|127\.|\[::1\]|0\.0\.0\.0)/.test(url)
    url = (local ? 'ws://' : 'wss://') + url
  }
  let parsed
  try {
    parsed = new URL(url)
  } catch (e) {
    throw new UsageError(`not a URL: ${input}`)
  }
  return parsed.href
}

/** Help text for a command from its options table. */
function helpText (cmd) {
  const lines = [cmd.usage, '', cmd.summary, '']
  const opts = Object.entries({ ...cmd.options, ...COMMON }).filter(([, o]) => o.help)
  if (opts.length) {
    lines.push('Options:')
    for (const [name, o] of opts) {
      const flag = (o.short ? `-${o.short}, ` : '    ') + `--${name}` + (o.type === 'string' ? ` ${o.arg || 'VALUE'}` : '')
      lines.push(`  ${flag.padEnd(26)} ${o.help}`)
    }
  }
  if (cmd.more) lines.push('', cmd.more)
  return lines.join('\n')
}

module.exports = { parse, intOption, wsUrl, helpText }
