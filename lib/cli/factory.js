'use strict'
// libvms factory SCRIPT: deploy a VM factory script at `/`; the VMs it provisions are served at `/<id>`.
const { serve, SERVE_OPTIONS } = require('./serve')

module.exports = {
  summary: 'deploy a VM factory script (it provisions VMs, served at /<id>)',
  usage: 'Usage: libvms factory SCRIPT [--port 5555] [--host 127.0.0.1] [--dir DIR] [--title TITLE] [--max-vms 100]',
  options: {
    ...SERVE_OPTIONS,
    'max-vms': { type: 'string', arg: 'N', help: 'most VMs this host runs at once (default 100)' }
  },
  more: [
    'The factory script gets System.vms.provisionVM({code, title}) and System.vms.shutdownVM(id); see',
    'examples/factory.js. Each VM lives in DIR/<id>; restarting on the same DIR brings back the VMs not shut down.'
  ].join('\n'),
  run: (ctx) => serve(ctx, { factory: true })
}
