'use strict'
// libvms call URL METHOD [ARGS...]: one call, its result printed as JSON.
const { connect, methodsOf, CLIENT_OPTIONS } = require('./client')
const { rpcErrorText } = require('./rpc')
const { UsageError } = require('../errors')

/** Each argument is JSON (`5`, `"x"`, `{"a":1}`); anything that is not valid JSON is passed as a string. */
function parseArg (text) {
  try {
    return JSON.parse(text)
  } catch (e) {
    return text
  }
}

module.exports = {
  summary: 'call one method of a VM and print its result as JSON',
  usage: 'Usage: libvms call URL METHOD [ARG...] [--user USER] [--key FILE] [--timeout MS]',
  options: CLIENT_OPTIONS,
  more: [
    'Each ARG is parsed as JSON (5, true, \'"text"\', \'{"a":1}\'); an ARG that is not valid JSON is passed as a string.',
    'URL is ws://HOST:PORT/PATH (localhost:5555 is short for ws://localhost:5555/).',
    'Exit code: 0 the call returned, 1 the method threw (its error on stderr), 2 bad usage or no connection.'
  ].join('\n'),
  async run ({ positionals, values, io }) {
    const [url, method, ...rawArgs] = positionals
    if (!url || !method) throw new UsageError('usage: libvms call URL METHOD [ARG...]')
    const { client } = await connect(url, values)
    try {
      if (!methodsOf(client).includes(method)) {
        io.err.write(`libvms: the VM has no method "${method}" (it exports: ${methodsOf(client).join(', ') || 'nothing'})\n`)
        return 1
      }
      let res
      try {
        res = await client[method](...rawArgs.map(parseArg))
      } catch (e) {
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
