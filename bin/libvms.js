#!/usr/bin/env node
'use strict'
// The `libvms` command (also installed as `nodevms`, for NodeVMS 1.x habits). Commands live in lib/cli/.
require('../lib/cli/main').run(process.argv.slice(2))
