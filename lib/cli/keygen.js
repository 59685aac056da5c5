'use strict'
// libvms keygen [FILE]: a new Ed25519 key pair for signed calls (`libvms call ... --key FILE`).
const fs = require('node:fs')
const native = require('../native')
const { UsageError } = require('../errors')

/** Read a key file written by `keygen`: `{publicKey, secretKey}` as Buffers. */
function readKeyFile (file) {
  let k
  try {
    k = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (e) {
    throw new UsageError(`cannot read key file ${file}: ${e.message}`)
  }
  if (!k || !/^[0-9a-f]{64}$/.test(k.publicKey) || !/^[0-9a-f]{128}$/.test(k.secretKey)) {
    throw new UsageError(`${file} is not a key file from \`libvms keygen\``)
  }
  return { publicKey: Buffer.from(k.publicKey, 'hex'), secretKey: Buffer.from(k.secretKey, 'hex') }
}

module.exports = {
  summary: 'make an Ed25519 key pair for signed calls (prints it, or writes FILE readable by you only)',
  usage: 'Usage: libvms keygen [FILE]',
  options: {},
  more: 'The file holds {"publicKey", "secretKey"} in hex; your caller id on a signed VM is the publicKey.',
  readKeyFile,
  async run ({ positionals, io }) {
    const [file] = positionals
    const { publicKey, secretKey } = native.generateKeyPair()
    const text = JSON.stringify({ publicKey: publicKey.toString('hex'), secretKey: secretKey.toString('hex') }, null, 2) + '\n'
    if (!file) {
      io.out.write(text)
      return 0
    }
    try {
      fs.writeFileSync(file, text, { mode: 0o600, flag: 'wx' })
    } catch (e) {
      throw new UsageError(e.code === 'EEXIST' ? `${file} already exists` : `cannot write ${file}: ${e.message}`)
    }
    io.out.write(`${publicKey.toString('hex')}\n`)
    return 0
  }
}
