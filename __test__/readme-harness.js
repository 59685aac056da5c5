'use strict'
// Runs the libvms 2 README's snippets (copied verbatim into fixtures/readme/) as programs in an app folder whose
// node_modules holds libvms: linked to this checkout, or installed from a tarball. Each snippet's text goes unchanged
// inside an async function (the snippets use top-level await), with what the README leaves to the reader in scope:
// `opts` (`{dir: './audit-dir'}`) and `Verifier` (used, not imported, by the audit snippet). The README never closes
// its clients, so a finished snippet exits the process.
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const FIXTURES = path.join(__dirname, 'fixtures', 'readme')

/** Write the runnable snippets into `app` (a folder with node_modules/libvms). */
function prepare (app) {
  fs.copyFileSync(path.join(FIXTURES, 'port-map.js'), path.join(app, 'port-map.js'))
  for (const name of ['serve', 'call', 'audit']) {
    const snippet = fs.readFileSync(path.join(FIXTURES, name + '.js'), 'utf8')
    const done = name === 'serve' ? '' : 'process.exit(0)'
    fs.writeFileSync(path.join(app, `readme-${name}.js`), [
      "const { Verifier } = require('libvms')",
      "const opts = { dir: './audit-dir' }",
      ';(async () => {',
      snippet,
      `})().then(() => { ${done} }, (e) => { console.error(e); process.exit(1) })`,
      ''
    ].join('\n'))
  }
  fs.mkdirSync(path.join(app, 'tmp'), { recursive: true })
}

function env (app, extra) {
  // Fetched copies go to temporary folders: keep them inside the app folder, which the test removes.
  return { ...process.env, TMPDIR: path.join(app, 'tmp'), README_PORT_FILE: path.join(app, 'port'), ...extra }
}

/** Run `call` or `audit` to the end; returns {status, stdout, stderr}. */
function run (app, name, extra) {
  return spawnSync(process.execPath, ['-r', './port-map.js', `readme-${name}.js`], {
    cwd: app, env: env(app, extra), encoding: 'utf8', timeout: 60000
  })
}

/** Start `serve`; resolves with the process and its output once it serves. Stop it with `stop`. */
function serve (app, extra) {
  fs.rmSync(path.join(app, 'port'), { force: true })
  const child = spawn(process.execPath, ['-r', './port-map.js', 'readme-serve.js'], {
    cwd: app, env: env(app, extra), stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stderr.on('data', (d) => { err += d })
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d
      if (out.includes('Call log URL:')) resolve({ child, output: () => out })
    })
    child.on('exit', (code) => reject(new Error(`serve exited (${code}) before serving: ${out}${err}`)))
  })
}

function stop (server) {
  return new Promise((resolve) => {
    if (server.child.exitCode !== null || server.child.signalCode !== null) return resolve()
    server.child.removeAllListeners('exit')
    server.child.on('exit', () => resolve())
    server.child.kill()
  })
}

module.exports = { prepare, run, serve, stop }
