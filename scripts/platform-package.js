#!/usr/bin/env node
'use strict'
// Fills a platform package (npm/<target>/) with a built addon, ready for `npm pack` / `npm publish`:
//   node scripts/platform-package.js [--target linux-x64-gnu] [--addon ./libvms.node] [--out npm/linux-x64-gnu]
// It copies the addon to <out>/libvms.<target>.node and sets the package's version to the main package's, so
// the exact-version optionalDependency in package.json matches. See npm/README.md for the release steps.
const fs = require('node:fs')
const path = require('node:path')
const { parseArgs } = require('node:util')
const { platformTarget } = require('../lib/platform')

const root = path.join(__dirname, '..')
const { values } = parseArgs({
  options: { target: { type: 'string' }, addon: { type: 'string' }, out: { type: 'string' } }
})
const target = values.target || platformTarget()
const addon = path.resolve(values.addon || path.join(root, 'libvms.node'))
const template = path.join(root, 'npm', target)
const out = path.resolve(values.out || template)

if (!fs.existsSync(path.join(template, 'package.json'))) {
  console.error(`platform-package: no npm/${target}/package.json (known: ${fs.readdirSync(path.join(root, 'npm')).filter((d) => !d.includes('.')).join(', ')})`)
  process.exit(2)
}
if (!fs.existsSync(addon)) {
  console.error(`platform-package: no addon at ${addon}; run \`npm run build\` first (or pass --addon)`)
  process.exit(2)
}

const version = require(path.join(root, 'package.json')).version
const manifest = JSON.parse(fs.readFileSync(path.join(template, 'package.json'), 'utf8'))
manifest.version = version
fs.mkdirSync(out, { recursive: true })
if (out !== template) fs.copyFileSync(path.join(template, 'README.md'), path.join(out, 'README.md'))
fs.writeFileSync(path.join(out, 'package.json'), JSON.stringify(manifest, null, 2) + '\n')
fs.copyFileSync(addon, path.join(out, manifest.main))
console.error(`platform-package: ${manifest.name}@${version} in ${path.relative(process.cwd(), out) || '.'}`)
