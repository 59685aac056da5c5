// The README's audit, typed, in CommonJS (`require`). Checked by `tsc --strict --noEmit` (__test__/types.test.js).
import libvms = require('libvms')
const { RPCClient, CallLog, DatArchive, VM, Verifier } = libvms

async function audit (url: string, dir: string): Promise<void> {
  const client = new RPCClient()
  await client.connect(url)
  const callLog = await CallLog.fetch(client.backendInfo.callLogUrl)
  const filesArchive = new DatArchive(client.backendInfo.filesArchiveUrl)
  await filesArchive.download('/')
  const vm = await VM.fromCallLog(callLog, client.backendInfo, { dir })
  try {
    await Verifier.compareLogs(callLog, vm.callLog)
    await Verifier.compareArchives(filesArchive, vm.filesArchive)
  } catch (e) {
    if (e instanceof libvms.errors.VerificationError) console.error('mismatch:', e.message)
    throw e
  } finally {
    await Promise.all([client.close(), vm.close(), callLog.close(), filesArchive.close()])
  }
}

audit(process.argv[2] ?? 'ws://localhost:5555/bobs-vm', './audit-dir').catch(() => { process.exitCode = 1 })
