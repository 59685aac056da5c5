// The README's examples as one typed program (ESM, top-level await), in the shape a user would write them.
// `tsc --strict --noEmit` checks it against index.d.ts in the test suite (__test__/types.test.js).
import { VM, VMFactory, RPCServer, RPCClient, CallLog, DatArchive, Verifier, errors } from 'libvms'
import type { ProvisionedVMInfo } from 'libvms'

const opts = { dir: './audit-dir' }

// Run a VM
const scriptCode = `
  exports.foo = () => 'bar'
`
const vm = new VM(scriptCode)
await vm.deploy({ dir: './bobs-vm-data', title: 'Bobs VM' })
console.log('vm api exports:', Object.keys(vm.exports))

const rpcServer = new RPCServer()
rpcServer.mount('/bobs-vm', vm)
await rpcServer.listen(5555)
console.log('Files URL:', vm.filesArchive.url)
console.log('Call log URL:', vm.callLog.url)

// Connect to run commands
const client = new RPCClient()
await client.connect('ws://localhost:5555/bobs-vm')
const bar: string = await client.foo()
console.log(bar)

// Audit the VM state
const callLog = await CallLog.fetch(client.backendInfo.callLogUrl)
const filesArchive = new DatArchive(client.backendInfo.filesArchiveUrl)
await filesArchive.download('/')
const replica = await VM.fromCallLog(callLog, client.backendInfo, { dir: opts.dir })
await Verifier.compareLogs(callLog, replica.callLog)
await Verifier.compareArchives(filesArchive, replica.filesArchive)

// deploy() resolves with the ready VM
const ready = await new VM('exports.inc = (n) => n + 1').deploy({ dir: './counter' })
const two: number = await ready.executeCall({ methodName: 'inc', args: [1] })
console.log(two, ready.callLog.length, (await ready.filesArchive.getInfo()).version)

// A VM factory at the root
const factory = new VMFactory('exports.provisionVM = (args) => System.vms.provisionVM(args)', { maxVMs: 10 })
await factory.deploy({ dir: './vm-factory', title: 'Bobs VM Host' })
const host = new RPCServer()
host.mount('/', factory)
factory.setRPCServer(host)
await host.listen({ port: 0 })
const info: ProvisionedVMInfo = await factory.provisionVM({ code: "exports.foo = () => 'bar'", title: 'Provisioned' })
console.log(info.id, factory.getVM(info.id)?.callLog.url)

// Errors carry a stable code and a named class
try {
  await ready.filesArchive.readFile('/missing')
} catch (e) {
  if (e instanceof errors.NotFoundError) console.log(e.code, e.name)
}

await Promise.all([client.close(), rpcServer.close(), host.close(), vm.close(), replica.close(), ready.close(), factory.close(), callLog.close(), filesArchive.close()])
