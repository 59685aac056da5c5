'use strict'
// The package as npm serves it: `npm pack`, then installs into fresh apps, from tarballs, dependencies from the npm cache where it has them (the registry otherwise).
// - from source: the tarball's install script builds the addon (cargo's target dir is shared with this checkout's
//   through CARGO_TARGET_DIR, so compiled dependencies are reused; nothing of it may land in the package);
// - prebuilt: the platform package and the main package, with no cargo on PATH;
// - neither: every entry point says in one line what to do.
// Each installed app then runs the libvms 2 README's examples.
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const { tmpdir } = require('./helpers')
const readme = require('./readme-harness')
const { platformTarget, noBinaryMessage } = require('../lib/platform')

const ROOT = path.join(__dirname, '..')
const VERSION = require('../package.json').version
const NPM = npmCli()
// A PATH without cargo (rustup installs it under ~/.cargo/bin): node's folder and the system's.
const NO_CARGO_PATH = [path.dirname(process.execPath), '/usr/bin', '/bin'].join(path.delimiter)

function npmCli () {
  const candidates = [
    process.env.npm_execpath,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js')
  ]
  return candidates.find((f) => f && /npm-cli\.js$/.test(f) && fs.existsSync(f))
}

/** The environment without what an outer `npm test` exports (npm_config_*, npm_package_*...): a user's shell. */
function userEnv (extra = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)))
  return { ...env, LIBVMS_BUILD_QUIET: '1', ...extra }
}

function npm (cwd, args, env = {}) {
  const r = spawnSync(process.execPath, [NPM, ...args, '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd, encoding: 'utf8', env: userEnv(env), timeout: 15 * 60 * 1000
  })
  return { ...r, output: r.stdout + r.stderr }
}

/** `npm pack` of `dir` into `dest`; returns the tarball's path. */
function pack (dir, dest) {
  const r = spawnSync(process.execPath, [NPM, 'pack', '--json', '--pack-destination', dest], { cwd: dir, encoding: 'utf8', env: userEnv() })
  assert.equal(r.status, 0, r.stderr)
  return path.join(dest, JSON.parse(r.stdout)[0].filename)
}

/** A fresh app depending on `tarballs`, whose install scripts npm may run (npm 11.19+ blocks them by default). */
function app (t, tarballs) {
  const dir = tmpdir(t, 'libvms-app-')
  const dependencies = {}
  const allowScripts = {}
  for (const tgz of tarballs) {
    const name = path.basename(tgz).replace(/-\d+\.\d+\.\d+.*\.tgz$/, '')
    dependencies[name] = 'file:' + tgz
    allowScripts['file:' + tgz] = true
  }
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true, dependencies, allowScripts }))
  return dir
}

/** Run the README's serve / call / audit in `dir` against the installed package. */
async function runReadme (dir, env) {
  readme.prepare(dir)
  const server = await readme.serve(dir, env)
  try {
    const call = readme.run(dir, 'call', env)
    assert.equal(call.stdout, 'bar\n', call.stderr)
    const audit = readme.run(dir, 'audit', env)
    assert.equal(audit.status, 0, audit.stderr)
  } finally {
    await readme.stop(server)
  }
}

function installedFiles (dir) {
  return fs.readdirSync(path.join(dir, 'node_modules', 'libvms'))
}

let tarball = null
test.before(() => {
  assert.ok(NPM, 'cannot find npm-cli.js')
  tarball = pack(ROOT, fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'libvms-pack-')))
})
test.after(() => fs.rmSync(path.dirname(tarball), { recursive: true, force: true }))

test('the tarball installs, builds from source (no target/ left in the package), and runs the README examples', async (t) => {
  const dir = app(t, [tarball])
  const r = npm(dir, ['install', '--foreground-scripts'], { CARGO_TARGET_DIR: path.join(ROOT, 'target') })
  assert.equal(r.status, 0, r.output)
  assert.match(r.output, /libvms: building the native addon from source with cargo \(release\); this takes 1 to 5 minutes/)
  const files = installedFiles(dir)
  assert.ok(files.includes('libvms.node'), files.join(' '))
  assert.ok(!files.includes('target'), 'cargo target/ inside the installed package')
  await runReadme(dir)
  const version = spawnSync(path.join(dir, 'node_modules', '.bin', 'libvms'), ['--version'], { encoding: 'utf8' })
  assert.equal(version.stdout, `libvms ${VERSION}\n`, version.stderr)
})

test('prebuilt: the platform package and the main package install and run with no cargo on PATH', { skip: platformTarget() !== 'linux-x64-gnu' && 'no prebuilt package for this platform' }, async (t) => {
  assert.ok(fs.existsSync(path.join(ROOT, 'libvms.node')), 'build the addon first (npm run build)')
  const work = tmpdir(t)
  const platformDir = path.join(work, 'linux-x64-gnu')
  const fill = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'platform-package.js'), '--target', 'linux-x64-gnu', '--out', platformDir], { encoding: 'utf8' })
  assert.equal(fill.status, 0, fill.stderr)
  const platformTgz = pack(platformDir, work)
  const dir = app(t, [platformTgz, tarball])
  const env = { PATH: NO_CARGO_PATH, CARGO: '' }
  assert.notEqual(spawnSync('cargo', ['--version'], { env: userEnv(env) }).status, 0, 'cargo is still on PATH')
  const r = npm(dir, ['install', '--foreground-scripts'], env)
  assert.equal(r.status, 0, r.output)
  assert.match(r.output, /libvms: using the prebuilt addon from libvms-linux-x64-gnu/)
  assert.ok(!installedFiles(dir).includes('libvms.node'), 'built from source despite the prebuilt package')
  await runReadme(dir, env)
})

test('no prebuilt addon and no cargo: install, require, import and the CLI each say in one line what to do', async (t) => {
  const dir = app(t, [tarball])
  const env = { PATH: NO_CARGO_PATH, CARGO: '' }
  const line = noBinaryMessage()
  // The install script cannot build: the install fails with the line.
  const failed = npm(dir, ['install', '--foreground-scripts'], env)
  assert.notEqual(failed.status, 0)
  assert.ok(failed.output.includes(line), failed.output)
  // Installed without scripts: every entry point fails with the line and no stack.
  const r = npm(dir, ['install', '--ignore-scripts'], env)
  assert.equal(r.status, 0, r.output)
  const run = (args) => spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', env: userEnv(env) })
  for (const args of [['-e', "require('libvms')"], ['--input-type=module', '-e', "import 'libvms'"]]) {
    const out = run(args)
    assert.equal(out.status, 1)
    assert.ok(out.stderr.includes(line), out.stderr)
    assert.doesNotMatch(out.stderr, /\n\s+at /, 'a stack trace')
  }
  const cli = run([path.join(dir, 'node_modules', 'libvms', 'bin', 'libvms.js'), '--version'])
  assert.equal(cli.status, 2)
  assert.equal(cli.stderr, line + '\n')
})

test('installing from source without CARGO_TARGET_DIR builds in a temporary folder and removes it', async (t) => {
  // The unpacked tarball (no .git), with a stand-in for cargo that records where it was asked to build.
  const dir = tmpdir(t)
  assert.equal(spawnSync('tar', ['xzf', tarball, '-C', dir]).status, 0)
  const pkg = path.join(dir, 'package')
  const record = path.join(dir, 'target-dir')
  const cargo = path.join(dir, 'cargo')
  fs.writeFileSync(cargo, [
    '#!/bin/sh',
    '[ "$1" = "--version" ] && { echo "cargo 1.0.0 (stand-in)"; exit 0; }',
    'echo "$CARGO_TARGET_DIR" > "' + record + '"',
    'mkdir -p "$CARGO_TARGET_DIR/release" && echo addon > "$CARGO_TARGET_DIR/release/liblibvms.so"',
    ''
  ].join('\n'), { mode: 0o755 })
  const env = userEnv({ CARGO: cargo, npm_lifecycle_event: 'install' })
  delete env.CARGO_TARGET_DIR
  const r = spawnSync(process.execPath, ['scripts/build.js'], { cwd: pkg, env, encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  assert.equal(fs.readFileSync(path.join(pkg, 'libvms.node'), 'utf8'), 'addon\n')
  const used = fs.readFileSync(record, 'utf8').trim()
  assert.ok(!used.startsWith(pkg), `built inside the package: ${used}`)
  assert.ok(!fs.existsSync(used), `left ${used} behind`)
  assert.deepEqual(fs.readdirSync(pkg).filter((f) => f === 'target'), [])
})
