'use strict'
// A host for crash.test.js: deploys (or reopens, recovering) the VM in argv[2], serves it on a free port, prints
// `{"port":N,"recovery":...}` and runs until killed.
const { VM, RPCServer } = require('..')

const CODE = `
exports.init = async () => { await System.files.mkdir('/k').catch(() => {}) }
exports.put = async (id) => { await System.files.writeFile('/k/' + id, id); return id }
exports.big = async (id) => { await System.files.writeFile('/k/big-' + id, Buffer.alloc(1024 * 1024, id.length)); return id }
exports.move = async (id) => {
  // A rename as scripts can make one (System.files has no rename): a folder, a file in it, the old file gone.
  await System.files.mkdir('/m-' + id)
  await System.files.writeFile('/m-' + id + '/f', await System.files.readFile('/k/' + id).catch(() => 'none'))
  await System.files.unlink('/k/' + id).catch(() => {})
  return id
}
exports.drop = async (id) => { await System.files.rmdir('/m-' + id, { recursive: true }); return id }
`

async function main () {
  const vm = new VM(CODE)
  await vm.deploy({ dir: process.argv[2], title: 'crash' })
  const server = new RPCServer()
  server.mount('/', vm)
  await server.listen({ port: 0, host: '127.0.0.1' })
  process.stdout.write(JSON.stringify({ port: server.port, recovery: vm.recovery }) + '\n')
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(String(e && e.stack) + '\n')
    process.exit(1)
  })
}

module.exports = { CODE }
