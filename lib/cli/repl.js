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
  const result = run(cmd, context)
  return result && typeof result.then === 'function' ? await result : result
}

/** Run `cmd`; with top-level `await` (as Node's own REPL allows), run it inside an async function instead. */
function run (cmd, context) {
  try {
    return nodeVm.runInContext(cmd, context)
  } catch (e) {
    if (!e || e.name !== 'SyntaxError' || !/\bawait\b/.test(cmd)) throw e // (from the context's realm)
    const body = cmd.trim().replace(/;$/, '')
    try {
      return nodeVm.runInContext(`(async () => (${body}\n))()`, context) // an expression: its value is the result
    } catch {
      // Statements (`const x = await inc(); x * 2`): run as a function body; the value of a final expression is lost.
      return nodeVm.runInContext(`(async () => { ${cmd}\n })()`, context)
    }
  }
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
    // Calls still running when the input ends (piped input ending in .exit) are waited for, not dropped.
    // Commands run one after the other (piped input arrives all at once), so results print in the input's order.
    const pending = new Set()
    let previous = Promise.resolve()
    const server = nodeRepl.start({
      prompt: '> ',
      input: process.stdin,
      output: io.out,
      eval (cmd, _ctx, _file, cb) {
        const job = previous.then(() => evaluate(cmd, context))
        previous = job.catch(() => {})
        pending.add(job)
        job.finally(() => pending.delete(job)).catch(() => {})
        job.then((r) => cb(null, r), (e) => {
          // Let the user finish a multi-line expression.
          if (e && e.name === 'SyntaxError' && /Unexpected end of input|missing \) after/.test(e.message)) return cb(new nodeRepl.Recoverable(e))
          cb(asError(e))
        })
      }
    })
    let leaving = false
    const closed = new Promise((resolve) => {
      server.on('exit', resolve)
      if (typeof client.on === 'function') {
        client.on('close', () => {
          if (leaving) return // we closed it: Ctrl+D or .exit is not news
          io.err.write('\nlibvms: the VM closed the connection\n')
          server.close()
        })
      }
    })
    await closed
    while (pending.size) await Promise.allSettled([...pending])
    leaving = true
    await client.close()
    return 0
  }
}
