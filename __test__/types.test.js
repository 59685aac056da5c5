'use strict'
// index.d.ts: programs written from the README (examples/typescript/) compile under `tsc --strict`, resolving
// `libvms` the way a user's project does (package.json `exports`, with @types/node beside it).
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const { tmpdir } = require('./helpers')

const ROOT = path.join(__dirname, '..')
const TYPED = path.join(ROOT, 'examples', 'typescript')

test('tsc --strict --noEmit is clean on the typed examples (ESM and CommonJS)', (t) => {
  const app = tmpdir(t)
  fs.mkdirSync(path.join(app, 'node_modules', '@types'), { recursive: true })
  fs.symlinkSync(ROOT, path.join(app, 'node_modules', 'libvms'), 'dir')
  fs.symlinkSync(path.join(ROOT, 'node_modules', '@types', 'node'), path.join(app, 'node_modules', '@types', 'node'), 'dir')
  fs.writeFileSync(path.join(app, 'package.json'), '{"type": "module"}\n')
  const files = fs.readdirSync(TYPED).filter((f) => /\.[cm]?ts$/.test(f))
  assert.ok(files.length >= 2)
  for (const f of files) fs.copyFileSync(path.join(TYPED, f), path.join(app, f))
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const args = ['--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', ...files]
  const r = spawnSync(process.execPath, [tsc, ...args], { cwd: app, encoding: 'utf8' })
  assert.equal(r.status, 0, r.stdout + r.stderr)
})
