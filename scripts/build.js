#!/usr/bin/env node
'use strict'
// Builds the native addon from source with cargo (release) and copies it to ./libvms.node.
// As the `install` script of an installed package it first checks for the prebuilt platform package (libvms-<target>,
// an optional dependency) and builds only when there is none. In a git checkout, and with `npm run build`, it always
// builds.
// Where cargo puts its work: CARGO_TARGET_DIR when set; ./target in a git checkout (incremental builds); otherwise a
// temporary folder removed afterwards, so an installed package never carries cargo's target/ (hundreds of MB).
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..')
const cargo = process.env.CARGO || 'cargo'
const installing = process.env.npm_lifecycle_event === 'install'
const checkout = fs.existsSync(path.join(root, '.git'))
const { platformTarget, platformPackage, noBinaryMessage } = require('../lib/platform')

function main () {
  if (installing && !checkout) {
    const prebuilt = findPrebuilt()
    if (prebuilt) {
      console.error(`libvms: using the prebuilt addon from ${prebuilt}`)
      return 0
    }
  }
  const probe = spawnSync(cargo, ['--version'], { encoding: 'utf8' })
  if (probe.error || probe.status !== 0) {
    console.error(noBinaryMessage())
    return 1
  }

  const { dir: targetDir, temporary } = targetDirectory()
  announce('libvms: building the native addon from source with cargo (release); this takes 1 to 5 minutes...')
  const args = ['build', '--release', '-p', 'libvms']
  if (fs.existsSync(path.join(root, 'Cargo.lock'))) args.push('--locked')
  try {
    const build = spawnSync(cargo, args, {
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, CARGO_TARGET_DIR: targetDir }
    })
    if (build.status !== 0) {
      console.error(`libvms: \`${cargo} ${args.join(' ')}\` failed (see its output above)`)
      return build.status || 1
    }
    const names = { linux: 'liblibvms.so', darwin: 'liblibvms.dylib', win32: 'libvms.dll' }
    const built = path.join(targetDir, 'release', names[process.platform] || names.linux)
    const dest = path.join(root, 'libvms.node')
    // Copy to a temp name and rename, so a running process never sees a half-written addon.
    fs.copyFileSync(built, dest + '.tmp')
    fs.renameSync(dest + '.tmp', dest)
    console.error(`libvms: built ${path.relative(process.cwd(), dest) || dest}`)
    return 0
  } finally {
    if (temporary) fs.rmSync(targetDir, { recursive: true, force: true })
  }
}

/** The platform package's addon, if npm installed one that loads here. */
function findPrebuilt () {
  const name = platformPackage(platformTarget())
  try {
    require(require.resolve(name))
    return name
  } catch (_) {
    return null
  }
}

function targetDirectory () {
  if (process.env.CARGO_TARGET_DIR) return { dir: path.resolve(root, process.env.CARGO_TARGET_DIR), temporary: false }
  if (checkout) return { dir: path.join(root, 'target'), temporary: false }
  return { dir: fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-build-')), temporary: true }
}

/**
 * npm hides the output of a dependency's install script, so a long build looks like a hang: say it on the terminal
 * too when there is one.
 */
function announce (line) {
  console.error(line)
  if (!installing || process.stderr.isTTY || process.env.LIBVMS_BUILD_QUIET) return
  try {
    const fd = fs.openSync('/dev/tty', 'w')
    fs.writeSync(fd, line + '\n')
    fs.closeSync(fd)
  } catch (_) {}
}

process.exitCode = main()
