// persisted-counter.js: state in the files archive, so it survives restarts and anyone can read it.
const COUNTER = '/counter'

exports.inc = async () => {
  const i = (await read()) + 1
  await System.files.writeFile(COUNTER, String(i))
  return i
}

exports.get = () => read()

async function read () {
  try {
    return Number(await System.files.readFile(COUNTER))
  } catch (e) {
    if (e.name === 'NotFoundError') return 0
    throw e
  }
}
