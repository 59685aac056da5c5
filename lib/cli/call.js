'use strict'
// libvms call URL METHOD [ARGS...]: one call, its result printed as JSON.
const { connect, methodsOf, CLIENT_OPTIONS } = require('./client')
const { intOption } = require('./args')
const { rpcErrorText } = require('./rpc')
const { UsageError } = require('../errors')

/**
 * Each argument is JSON (`5`, `-5`, `"x"`, `{"a":1}`). A plain word that is not JSON (`alice`) is sent as a string,
 * and a note says so; text that looks like it meant to be JSON but is not (`{a:1}`, `'{"a": 1'`, `007`) is refused
 * rather than silently sent as a string. With `--string`, every argument is a string as typed.
 */
function parseArg (text, i, { asString, note }) {
  if (asString) return text
  try {
    return JSON.parse(text)
  } catch (e) {
    if (LOOKS_LIKE_JSON.test(text)) {
      throw new UsageError(`argument ${i + 1} is not valid JSON: ${text} (${e.message}). Fix it, quote a string as '"text"', or pass --string to send every argument as a string`)
    }
    note(`argument ${i + 1} is not JSON; sending it as the string ${JSON.stringify(text)} (--string says so and silences this note)`)
    return text
  }
}

// Starts like a JSON object, array, string, number or literal.
const LOOKS_LIKE_JSON = /^\s*([{["\d]|-|\.\d|(true|false|null)\b)/

/** A reply timeout says what happened and what to do: the call may well have run and been logged. */
function timeoutText (method, ms) {
  return `${method} got no reply within ${ms} ms. The call may still have run (and been logged): check with \`libvms log\` on the stopped VM before calling again, or wait longer with --timeout MS`
}

module.exports = {
  summary: 'call one method of a VM and print its result as JSON',
  usage: 'Usage: libvms call URL METHOD [ARG...] [--user USER] [--key FILE] [--timeout MS] [--string]',
  options: {
    ...CLIENT_OPTIONS,
    string: { type: 'boolean', short: 's', help: 'send every ARG as a string, as typed' }
  },
  parseArg,
  more: [
    'Each ARG is parsed as JSON (5, -5, true, \'"text"\', \'{"a":1}\'). A plain word (alice) is sent as a string, with a',
    'note; an ARG that looks like JSON but is not ({a:1}, 007) is refused. --string sends every ARG as a string.',
    'URL is ws://HOST:PORT/PATH (localhost:5555 is short for ws://localhost:5555/).',
    'Exit code: 0 the call returned, 1 the method threw or no reply came in time (on stderr), 2 bad usage (an ARG that is',
    'not JSON) or no connection.'
  ].join('\n'),
  async run ({ positionals, values, io }) {
    const [url, method, ...rawArgs] = positionals
    if (!url || !method) throw new UsageError('usage: libvms call URL METHOD [ARG...]')
    // Arguments are checked before connecting: a typo costs no call.
    const notes = []
    const args = rawArgs.map((a, i) => parseArg(a, i, { asString: values.string, note: (n) => notes.push(n) }))
    for (const n of notes) io.err.write(`libvms: note: ${n}\n`)
    const { client } = await connect(url, values)
    try {
      if (!methodsOf(client).includes(method)) {
        io.err.write(`libvms: the VM has no method "${method}" (it exports: ${methodsOf(client).join(', ') || 'nothing'})\n`)
        return 1
      }
      let res
      try {
        res = await client[method](...args)
      } catch (e) {
        if (e && e.code === 'TIMEOUT') {
          io.err.write(`libvms: ${timeoutText(method, intOption(values, 'timeout', 5000))}\n`)
          return 1
        }
        io.err.write(`libvms: ${method} failed: ${rpcErrorText(e)}\n`)
        return 1
      }
      if (res !== undefined) io.out.write(JSON.stringify(res) + '\n')
      return 0
    } finally {
      await client.close()
    }
  }
}
