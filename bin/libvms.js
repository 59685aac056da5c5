#!/usr/bin/env node
'use strict'
// The `libvms` command (also installed as `nodevms`, for NodeVMS 1.x habits). Commands live in lib/cli/.
let cli
try {
  cli = require('../lib/cli/main')
} catch (e) {
  // No usable native addon: say what to do in one line, not with a stack trace.
  if (e && e.code !== 'ADDON_NOT_BUILT') throw e
  process.stderr.write(e.message + '\n')
  process.exit(2)
}
cli.run(process.argv.slice(2))
