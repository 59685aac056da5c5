'use strict'
// libvms exec SCRIPT: deploy a VM script and serve it over RPC at `/`.
const { serve, SERVE_OPTIONS } = require('./serve')

module.exports = {
  summary: 'deploy a VM script and serve it over RPC (WebSocket JSON-RPC)',
  usage: 'Usage: libvms exec SCRIPT [--port 5555] [--host 127.0.0.1] [--dir DIR] [--title TITLE]',
  options: SERVE_OPTIONS,
  more: [
    'The VM keeps its call log and files archive in DIR (default ./<script name>.libvms, e.g. counter.libvms for',
    'counter.js). Running exec again on the same DIR brings the VM back where it was (the log records the restart).',
    'Ctrl+C (SIGINT) or SIGTERM stops the server, lets running calls finish and closes the VM.',
    'NodeVMS 1.x flags -p, -d/--debug, --utp/--no-utp and -v are accepted; `nodevms SCRIPT` means `exec SCRIPT`.'
  ].join('\n'),
  run: (ctx) => serve(ctx)
}
