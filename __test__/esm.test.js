'use strict'
// `import { VM, errors } from 'libvms'` works (package.json `exports` -> index.mjs), with every CommonJS export.
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const { tmpdir } = require('./helpers')

const ROOT = path.join(__dirname, '..')

test('ESM: named and default imports from libvms', (t) => {
  const app = tmpdir(t)
  fs.mkdirSync(path.join(app, 'node_modules'))
  fs.symlinkSync(ROOT, path.join(app, 'node_modules', 'libvms'), 'dir')
  fs.writeFileSync(path.join(app, 'main.mjs'), `
    import { createRequire } from 'node:module'
    import * as ns from 'libvms'
    import libvms, { VM, errors } from 'libvms'
    const cjs = createRequire(import.meta.url)('libvms')
    const vm = new VM('exports.f = () => 1')
    console.log(JSON.stringify({
      missing: Object.keys(cjs).filter((k) => ns[k] !== cjs[k]),
      same: libvms === cjs && VM === cjs.VM,
      error: new errors.NotFoundError('x').code,
      id: typeof vm.id
    }))
  `)
  const r = spawnSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  // A name missing here was added to index.js but not to index.mjs.
  assert.deepEqual(JSON.parse(r.stdout), { missing: [], same: true, error: 'NOT_FOUND', id: 'string' })
})
