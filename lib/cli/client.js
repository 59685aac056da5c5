'use strict'
// Connect an RPCClient the way `call` and `repl` both need.
const RPCClient = require('../rpc-client')
const { wsUrl, intOption } = require('./args')

const CLIENT_OPTIONS = {
  user: { type: 'string', short: 'u', arg: 'USER', help: 'the caller id to connect as (debug mode)' },
  timeout: { type: 'string', arg: 'MS', help: 'give up on a call after this many ms (default 5000)' },
  key: { type: 'string', arg: 'FILE', help: 'sign calls with this key file (from `libvms keygen`; signed VMs)' }
}

async function connect (input, values) {
  const keyPair = values.key !== undefined ? require('./keygen').readKeyFile(values.key) : undefined
  const client = new RPCClient({ timeout: intOption(values, 'timeout', 5000), keyPair })
  const url = wsUrl(input)
  const opts = {}
  if (values.user !== undefined) opts.user = values.user
  try {
    await client.connect(url, opts)
  } catch (e) {
    if (e && e.code === 'CONNECTION_FAILED') e.message += ' (is the VM running? `libvms exec SCRIPT` prints the URL it serves at)'
    throw e
  }
  return { client, url }
}

/** The methods the VM exports (from the handshake). */
function methodsOf (client) {
  const info = client.backendInfo || {}
  return Array.isArray(info.methods) ? info.methods : []
}

module.exports = { connect, methodsOf, CLIENT_OPTIONS }
