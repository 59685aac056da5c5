'use strict'
// Dispatch `libvms <command> ...` to lib/cli/<command>.js; print errors without stacks (unless DEBUG is set) and
// exit with 0 (done), 1 (failed: a call's error, a verification mismatch) or 2 (bad usage or unusable input).
const path = require('node:path')
const fs = require('node:fs')
const createDebug = require('../debug')
const { parse, helpText } = require('./args')
const { UsageError } = require('../errors')

const debug = createDebug('libvms:cli')
const pkg = require('../../package.json')

const COMMANDS = {
  exec: require('./exec'),
  factory: require('./factory'),
  call: require('./call'),
  repl: require('./repl'),
  log: require('./log'),
  verify: require('./verify'),
  keygen: require('./keygen')
}

// Exit 2: the input cannot be used at all (as opposed to 1: it was used and the answer is "no").
const UNUSABLE = new Set(['USAGE', 'STORAGE_LOCKED', 'NOT_A_CORE', 'STORAGE_CORRUPT', 'CONNECTION_FAILED', 'BAD_ARGUMENT', 'ENOENT'])

function usage () {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length))
  return [
    `libvms ${pkg.version}: run auditable VM services, call them, and verify them`,
    '',
    'Usage: libvms <command> [options]   (also installed as `nodevms`)',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    '  libvms <command> --help   help for one command',
    '  libvms --version          print the version',
    '',
    'Set DEBUG=libvms* for debug output (and stack traces).'
  ].join('\n')
}

/** Run the command line `argv`; resolves with the exit code. */
async function main (argv, io = { out: process.stdout, err: process.stderr }) {
  const [first, ...rest] = argv
  if (first === undefined || first === '--help' || first === '-h') {
    io.out.write(usage() + '\n')
    return 0
  }
  if (first === '--version' || first === '-v' || first === 'version') {
    io.out.write(`libvms ${pkg.version}\n`)
    return 0
  }
  if (first === 'help') {
    const cmd = COMMANDS[rest[0]]
    io.out.write((cmd ? helpText(cmd) : usage()) + '\n')
    return 0
  }
  let name = first
  let args = rest
  if (!Object.hasOwn(COMMANDS, name)) {
    // NodeVMS habit: `nodevms ./counter.js` means `exec ./counter.js`.
    if (!first.startsWith('-') && /\.[cm]?js$/.test(first) && fs.existsSync(first)) {
      name = 'exec'
      args = argv
    } else {
      throw new UsageError(`unknown command "${first}" (see libvms --help)`)
    }
  }
  const cmd = COMMANDS[name]
  const { values, positionals } = parse(args, cmd.options)
  if (values.help) {
    io.out.write(helpText(cmd) + '\n')
    return 0
  }
  if (values.version) { // nodevms exec -v
    io.out.write(`libvms ${pkg.version}\n`)
    return 0
  }
  debug('%s %o', name, { positionals, values })
  return cmd.run({ positionals, values, io, program: path.basename(process.argv[1] || 'libvms', '.js') })
}

/** Entry point for bin/: run, report, exit. */
function run (argv) {
  // A reader that goes away (`libvms log DIR | head`) ends the output quietly, not with an EPIPE stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e) => {
      if (!e || e.code !== 'EPIPE') throw e
    })
  }
  main(argv).then((code) => finish(code), (err) => {
    const stack = createDebug.enabled('libvms:cli') || process.env.DEBUG
    if (err && err.code === 'USAGE') {
      process.stderr.write(`libvms: ${err.message}\n`)
    } else {
      const name = err && err.name && err.name !== 'Error' ? `${err.name}: ` : ''
      process.stderr.write(`libvms: ${name}${err && err.message ? err.message : String(err)}\n`)
    }
    if (stack && err && err.stack) process.stderr.write(err.stack + '\n')
    finish(err && UNUSABLE.has(err.code) ? 2 : 1)
  })
}

function finish (code) {
  process.exitCode = code
  // Everything of ours has been closed; if something still holds the loop, do not hang the user's shell.
  setTimeout(() => {
    debug('event loop still busy after the command finished; exiting')
    process.exit(code)
  }, 2000).unref()
}

module.exports = { main, run, COMMANDS }
