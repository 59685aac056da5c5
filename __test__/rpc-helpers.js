'use strict'
// Shared setup of the RPC tests: a deployed VM, a server on 127.0.0.1 with an OS-chosen port, raw ws clients.
// Everything is closed when the test ends.
const path = require('node:path')
const WebSocket = require('ws')

const { RPCServer } = require('..')
const VM = require('../lib/vm')
const { tmpdir } = require('./helpers')

// The script of the wire transcript, plus a few methods for ordering and error tests.
const CODE = `
exports.hello = (name) => 'hello ' + name
exports.add = (a, b) => a + b
exports.noop = () => {}
exports.whoami = () => System.caller.id
exports.fail = () => { throw new Error('boom') }
exports.failType = () => { null.x }
exports.throwValue = () => { throw 'oops' }
exports.echo = (...args) => args
exports.sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
exports.write = async (i, ms) => {
  await new Promise((resolve) => setTimeout(resolve, ms))
  await System.files.writeFile('/value.txt', String(i))
  return i
}
exports.init = () => {}
`

const STACKS = new WeakMap()

/** Run `fn` when `t` ends, in reverse order of registration (clients, then servers, then VMs, then dirs). */
function defer (t, fn) {
  let stack = STACKS.get(t)
  if (!stack) {
    stack = []
    STACKS.set(t, stack)
    t.after(async () => { while (stack.length) await stack.pop()() })
  }
  stack.push(fn)
}

async function deployVM (t, code = CODE) {
  const dir = tmpdir({ after: (fn) => defer(t, fn) })
  const vm = new VM(code)
  await vm.deploy({ dir: path.join(dir, 'vm'), title: 'rpc test' })
  defer(t, () => vm.close())
  return vm
}

/** A VM mounted at /vm1 of a listening server. Returns {vm, server, url}. */
async function serve (t, opts = {}) {
  const vm = await deployVM(t, opts.code)
  const server = new RPCServer(opts.server)
  defer(t, () => server.close())
  server.mount('/vm1', vm)
  await server.listen({ port: 0, host: '127.0.0.1' })
  return { vm, server, base: `ws://127.0.0.1:${server.port}`, url: `ws://127.0.0.1:${server.port}/vm1` }
}

/** A raw WebSocket with a reply queue: `send(obj|string)`, `next()` resolves with the next message (parsed). */
async function rawClient (t, url) {
  const ws = new WebSocket(url)
  const inbox = []
  const waiters = []
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString())
    if (waiters.length) waiters.shift()(msg)
    else inbox.push(msg)
  })
  const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  defer(t, () => ws.terminate())
  return {
    ws,
    closed,
    send (m) { ws.send(typeof m === 'string' ? m : JSON.stringify(m)) },
    next (ms = 3000) {
      if (inbox.length) return Promise.resolve(inbox.shift())
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no reply')), ms)
        waiters.push((m) => { clearTimeout(timer); resolve(m) })
      })
    },
    async call (m) { this.send(m); return this.next() },
    pending () { return inbox.length }
  }
}

/** The logged calls of a VM (entries after init), as `{methodName, args, userId}` plus the result. */
async function loggedCalls (vm) {
  const entries = await vm.callLog.list()
  return entries.filter((e) => e.type === 'call' && e.call.methodName !== 'init')
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

module.exports = { defer, CODE, deployVM, serve, rawClient, loggedCalls, sleep }
