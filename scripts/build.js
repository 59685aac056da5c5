#!/usr/bin/env node
'use strict'
// Builds the native addon from source with cargo (release) and copies it to ./libvms.node.
// Runs as the package's `install` script, so `npm install` on a fresh clone is all a user needs.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const cargo = process.env.CARGO || 'cargo'

const probe = spawnSync(cargo, ['--version'], { encoding: 'utf8' })
if (probe.error || probe.status !== 0) {
  console.error(
    'libvms: cannot build the native addon: `cargo` was not found.\n' +
    'Install the Rust toolchain (https://rustup.rs), make sure `cargo` is on PATH, then run `npm install` again.'
  )
  process.exit(1)
}

const args = ['build', '--release', '-p', 'libvms']
if (fs.existsSync(path.join(root, 'Cargo.lock'))) args.push('--locked')
console.error(`libvms: ${cargo} ${args.join(' ')}`)
const build = spawnSync(cargo, args, { cwd: root, stdio: 'inherit' })
if (build.status !== 0) {
  console.error('libvms: cargo build failed (see the output above).')
  process.exit(build.status || 1)
}

const targetDir = process.env.CARGO_TARGET_DIR
  ? path.resolve(root, process.env.CARGO_TARGET_DIR)
  : path.join(root, 'target')
const names = { linux: 'liblibvms.so', darwin: 'liblibvms.dylib', win32: 'libvms.dll' }
const built = path.join(targetDir, 'release', names[process.platform] || names.linux)
const dest = path.join(root, 'libvms.node')
// Copy to a temp name and rename, so a running process never sees a half-written addon.
fs.copyFileSync(built, dest + '.tmp')
fs.renameSync(dest + '.tmp', dest)
console.error(`libvms: built ${path.relative(root, dest)}`)
