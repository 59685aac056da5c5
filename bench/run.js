'use strict'
// Runs every benchmark in bench/ (or those named on the command line), one process each.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const names = process.argv.slice(2)
const all = fs.readdirSync(__dirname).filter((f) => f.endsWith('.js') && !['run.js', 'table.js'].includes(f))
for (const file of all.filter((f) => names.length === 0 || names.includes(path.basename(f, '.js')))) {
  const r = spawnSync(process.execPath, ['--expose-gc', path.join(__dirname, file)], { stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status || 1)
}
