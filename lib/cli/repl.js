'use strict'
// libvms repl URL: a REPL whose globals are the VM's methods (and `client`, as in NodeVMS). Promises are awaited,
// so `inc()` prints the result, not a Promise.
const nodeRepl = require('node:repl')
const nodeVm = require('node:vm')
const util = require('node:util')
const { connect, methodsOf, CLIENT_OPTIONS } = require('./client')
const { rpcErrorText } = require('./rpc')
const { UsageError } = require('../errors')

function globalsFor (client) {
  const g = { client }
  for (const m of methodsOf(client)) g[m] = (...args) => client[m](...args)
  return g
}

async function evaluate (cmd, context) {
  const result = nodeVm.runInContext(cmd, context)
  return result && typeof result.then === 'function' ? await result : result
}

// Errors from the VM arrive as {code, message, data}; show them as one line.
function asError (e) {
  if (e instanceof Error && e.data === undefined) return e
  const err = new Error(rpcErrorText(e))
  err.stack = err.message
  return err
}

module.exports = {
  summary: 'open a REPL on a VM, its methods as globals',
  usage: 'Usage: libvms repl URL [--user USER] [--exec CMD]',
  options: {
    ...CLIENT_OPTIONS,
    exec: { type: 'string', short: 'e', arg: 'CMD', help: 'run one command, print its result and exit' }
  },
  more: 'In the REPL, `inc()` calls the VM\'s `inc` and prints its result; `client` is the RPCClient.',
  async run ({ positionals, values, io }) {
    if (!positionals[0]) throw new UsageError('usage: libvms repl URL')
    const { client, url } = await connect(positionals[0], values)
    const context = nodeVm.createContext(globalsFor(client))

    if (values.exec !== undefined) {
      try {
        const res = await evaluate(values.exec, context)
        io.out.write(util.inspect(res, { depth: null }) + '\n')
        return 0
      } catch (e) {
        io.err.write(`libvms: ${rpcErrorText(e)}\n`)
        return 1
      } finally {
        await client.close()
      }
    }

    io.out.write(`Connected to ${url}${values.user ? ` as ${values.user}` : ''}.\n`)
    io.out.write(`Methods: ${methodsOf(client).join(', ') || '(none)'}  (and \`client\`; .exit to leave)\n`)
    const server = nodeRepl.start({
      prompt: '> ',
      input: process.stdin,
      output: io.out,
      eval (cmd, _ctx, _file, cb) {
        evaluate(cmd, context).then((r) => cb(null, r), (e) => {
          // Let the user finish a multi-line expression.
          if (e instanceof SyntaxError && /Unexpected end of input|missing \) after/.test(e.message)) return cb(new nodeRepl.Recoverable(e))
          cb(asError(e))
        })
      }
    })
    const closed = new Promise((resolve) => {
      server.on('exit', resolve)
      if (typeof client.on === 'function') {
        client.on('close', () => {
          io.err.write('\nlibvms: connection closed\n')
          server.close()
        })
      }
    })
    await closed
    await client.close()
    return 0
  }
}
