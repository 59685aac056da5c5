'use strict'
// --swarm / --bootstrap, shared by exec, factory and verify: joining a Hyperswarm DHT is always asked for.
const { swarmConfig } = require('../swarm')
const { UsageError } = require('../errors')

const SWARM_OPTIONS = {
  swarm: { type: 'boolean', help: 'join the public Hyperswarm DHT (announce, or look up, the call log and files archive)' },
  bootstrap: { type: 'string', arg: 'HOST:PORT[,...]', help: 'join a private Hyperswarm DHT through these nodes instead (implies --swarm; or LIBVMS_BOOTSTRAP)' }
}

/** `{ swarm, bootstrap }` for the library from the parsed flags; bad values are usage errors. */
function swarmOptions (values) {
  const opts = { swarm: !!values.swarm, bootstrap: values.bootstrap }
  try {
    swarmConfig(opts)
  } catch (e) {
    throw new UsageError(`--bootstrap: ${e.message}`)
  }
  return opts
}

/** The line naming the DHT a command joined, or null when it joined none. */
function describeSwarm (values) {
  const config = swarmConfig(swarmOptions(values))
  if (!config) return null
  return config.bootstrap ? `Hyperswarm DHT (bootstrap ${config.bootstrap.map(b => `${b.host}:${b.port}`).join(',')})` : 'Hyperswarm DHT (public)'
}

module.exports = { SWARM_OPTIONS, swarmOptions, describeSwarm }
