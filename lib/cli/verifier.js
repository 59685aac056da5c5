'use strict'
// The comparisons `libvms verify` runs. The package's Verifier (issue 4) is used when this build has it; until then
// this minimal one applies SPEC's rules with the same contract (async, throws VerificationError naming the first
// divergent entry / the differing paths). Delete the fallback once Verifier is exported everywhere.
const { isDeepStrictEqual } = require('node:util')
const { VerificationError } = require('../errors')

const fallback = {
  /** Same length; init entries equal in type and code; every later entry deep-equal. */
  async compareLogs (a, b) {
    if (a.length !== b.length) {
      throw new VerificationError(`Call logs differ in length: ${a.length} entries, replay has ${b.length}`, { index: Math.min(a.length, b.length) })
    }
    let seq = 0
    const other = b.entries()
    for await (const ea of a.entries()) {
      const { value: eb } = await other.next()
      const same = seq === 0
        ? ea && eb && ea.type === eb.type && ea.code === eb.code
        : isDeepStrictEqual(ea, eb)
      if (!same) {
        await other.return()
        throw new VerificationError(`Call logs differ at entry ${seq}: ${JSON.stringify(ea)} vs replay ${JSON.stringify(eb)}`, { index: seq })
      }
      seq++
    }
  },

  /** Same set of files with the same content, ignoring /dat.json. */
  async compareArchives (a, b) {
    const fa = await files(a)
    const fb = await files(b)
    const paths = []
    for (const p of new Set([...fa, ...fb])) {
      if (!fa.has(p) || !fb.has(p)) {
        paths.push(p)
        continue
      }
      const [ca, cb] = await Promise.all([a.readFile(p, 'binary'), b.readFile(p, 'binary')])
      if (!ca.equals(cb)) paths.push(p)
    }
    if (paths.length) {
      paths.sort()
      throw new VerificationError(`Files archives differ: ${paths.join(', ')}`, { paths })
    }
  }
}

async function files (archive) {
  const list = await archive.readdir('/', { recursive: true, stat: true })
  return new Set(list.filter((e) => e.stat.isFile()).map((e) => '/' + e.name).filter((p) => p !== '/dat.json'))
}

function verifier () {
  const { Verifier } = require('../..')
  return Verifier || fallback
}

module.exports = { verifier, fallback }
