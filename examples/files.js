// files.js: a small key/value store over the files archive (System.files, Beaker's DatArchive API).
// init runs at every (re)start of the VM, so it must not fail when the folder already exists.
exports.init = async () => {
  try {
    await System.files.mkdir('/notes')
  } catch (e) {
    if (e.name !== 'EntryAlreadyExistsError') throw e
  }
}

exports.write = async (name, text) => {
  await System.files.writeFile(notePath(name), String(text))
}

exports.read = (name) => System.files.readFile(notePath(name))

exports.list = () => System.files.readdir('/notes')

exports.remove = async (name) => {
  await System.files.unlink(notePath(name))
}

function notePath (name) {
  if (typeof name !== 'string' || !/^[\w.-]+$/.test(name) || name.startsWith('.')) {
    throw new Error('A note name is letters, digits, "_", "-" and "." (not first)')
  }
  return '/notes/' + name
}
