// key-server.js: a public directory of name -> public key bindings, kept by a list of admins.
// Until admins are set, anyone may set them (the first caller to do so becomes the keeper of the list).
const fs = System.files

// init runs at every (re)start of the VM, so it must not fail when the folder already exists.
exports.init = async () => {
  try {
    await System.files.mkdir('/keys')
  } catch (e) {
    if (e.name !== 'EntryAlreadyExistsError') throw e
  }
}

exports.setKey = async (name, pubkey) => {
  assertName(name)
  assert(typeof pubkey === 'string' && pubkey.length > 0, 'Pubkey param must be a string')
  assertCallerIsAdmin(await getAdmins())
  await fs.writeFile('/keys/' + name, pubkey)
}

exports.getKey = async (name) => {
  assertName(name)
  try {
    return await fs.readFile('/keys/' + name)
  } catch (e) {
    if (e.name === 'NotFoundError') return null
    throw e
  }
}

exports.delKey = async (name) => {
  assertName(name)
  assertCallerIsAdmin(await getAdmins())
  await fs.unlink('/keys/' + name)
}

exports.listKeys = () => fs.readdir('/keys')

// Admins are [{id, name}, ...]. Only a current admin may change the list (anyone, while it is empty).
exports.setAdmins = async (newAdmins) => {
  assertValidAdminArray(newAdmins)
  assertCallerIsAdmin(await getAdmins())
  await fs.writeFile('/admins.json', JSON.stringify(newAdmins))
}

exports.getAdmins = () => getAdmins()

async function getAdmins () {
  try {
    return JSON.parse(await fs.readFile('/admins.json'))
  } catch (e) {
    if (e.name === 'NotFoundError') return []
    throw e
  }
}

function assertValidAdminArray (admins) {
  assert(Array.isArray(admins), 'Admins must be an array')
  for (const admin of admins) {
    assert(admin && typeof admin === 'object', 'Admin items must be {id, name}')
    assert(typeof admin.id === 'string' && admin.id, 'Admin items must be {id, name}')
    assert(typeof admin.name === 'string' && admin.name, 'Admin items must be {id, name}')
  }
}

function assertCallerIsAdmin (admins) {
  if (admins.length === 0) return
  assert(admins.some((a) => a.id === System.caller.id), 'Not allowed')
}

function assertName (name) {
  assert(typeof name === 'string' && /^[\w.@-]+$/.test(name) && !name.startsWith('.'), 'Name param must be a plain name')
}

function assert (cond, message) {
  if (!cond) throw new Error(message)
}
