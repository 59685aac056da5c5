// factory.js: a VM host. Anyone may provision a VM; only its owner (the caller who provisioned it) may shut it
// down. Each VM's record is kept in the factory's files archive, so who owns what is public and audited.
// Run it with `libvms factory examples/factory.js`; provisioned VMs are served at /<id>.
// init runs at every (re)start of the VM, so it must not fail when the folder already exists.
exports.init = async () => {
  try {
    await System.files.mkdir('/vms')
  } catch (e) {
    if (e.name !== 'EntryAlreadyExistsError') throw e
  }
}

exports.provisionVM = async ({ code, title } = {}) => {
  const vm = await System.vms.provisionVM({ code, title })
  await writeRecord(vm.id, { vm, title, owner: System.caller.id })
  return vm
}

exports.shutdownVM = async (id) => {
  const record = await readRecord(id)
  if (System.caller.id !== record.owner) throw new Error('You are not authorized to shut down this vm')
  await System.vms.shutdownVM(id)
  await System.files.unlink(recordPath(id))
}

exports.listVMs = async () => {
  const names = await System.files.readdir('/vms')
  return names.map((name) => name.replace(/\.json$/, ''))
}

async function writeRecord (id, record) {
  await System.files.writeFile(recordPath(id), JSON.stringify(record))
}

async function readRecord (id) {
  try {
    return JSON.parse(await System.files.readFile(recordPath(id)))
  } catch (e) {
    throw new Error('VM record not found')
  }
}

function recordPath (id) {
  if (typeof id !== 'string' || !/^[0-9a-f-]{36}$/.test(id)) throw new Error('Not a VM id')
  return '/vms/' + id + '.json'
}
