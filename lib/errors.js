'use strict'
// One place where stable error codes (from Rust, see crates/errors) become named JavaScript Error classes.
// Callers match on `err.code` (stable) or `err.name` / `instanceof` (Beaker-style names); never on the message.

class LibvmsError extends Error {
  constructor (message, code, props) {
    super(message)
    this.code = code
    if (props) Object.assign(this, props)
  }

  get name () { return this.constructor.name }
}

// code -> class name. Archive names follow Beaker's DatArchive; the verifier's is VerificationError.
const CLASS_NAMES = {
  IO_ERROR: 'StorageIOError',
  STORAGE_LOCKED: 'StorageLockedError',
  STORAGE_CORRUPT: 'StorageCorruptError',
  NOT_A_CORE: 'NotACoreError',
  VERIFICATION_FAILED: 'IntegrityError',
  INVALID_SIGNATURE: 'InvalidSignatureError',
  OUT_OF_BOUNDS: 'OutOfBoundsError',
  NOT_WRITABLE: 'NotWritableError',
  CLOSED: 'ClosedError',
  BAD_ARGUMENT: 'BadArgumentError',
  ENCODING_ERROR: 'EncodingError',
  INVALID_PROOF: 'InvalidProofError',
  INTERNAL: 'InternalError',
  NOT_FOUND: 'NotFoundError',
  ENTRY_ALREADY_EXISTS: 'EntryAlreadyExistsError',
  PARENT_FOLDER_DOESNT_EXIST: 'ParentFolderDoesntExistError',
  INVALID_PATH: 'InvalidPathError',
  ARCHIVE_NOT_WRITABLE: 'ArchiveNotWritableError',
  DEST_DIRECTORY_NOT_EMPTY: 'DestDirectoryNotEmpty',
  INVALID_ENCODING: 'InvalidEncodingError',
  VERIFICATION_MISMATCH: 'VerificationError',
  TIMEOUT: 'TimeoutError',
  CONNECTION_FAILED: 'ConnectionError',
  LIMIT_EXCEEDED: 'LimitError',
  FORK: 'ForkError'
}

const classes = { LibvmsError }
const byCode = {}
for (const [code, name] of Object.entries(CLASS_NAMES)) {
  // A named class per code: `class NotFoundError extends LibvmsError`, with the code fixed.
  const cls = ({ [name]: class extends LibvmsError {
    constructor (message, props) { super(message || code, code, props) }
  } })[name]
  cls.code = code
  classes[name] = cls
  byCode[code] = cls
}

// Native errors arrive as `CODE: message` or `CODE@index: message` (see src/errors.rs).
const NATIVE_MESSAGE = /^([A-Z][A-Z_]+)(?:@(\d+))?: ([\s\S]*)$/

/** Turn an error thrown by the addon into the named class for its code; other errors pass through. */
function fromNative (err) {
  if (!err || typeof err.message !== 'string' || err instanceof LibvmsError) return err
  const m = NATIVE_MESSAGE.exec(err.message)
  if (!m || !byCode[m[1]]) return err
  const props = m[2] !== undefined ? { index: Number(m[2]) } : undefined
  return new byCode[m[1]](m[3], props)
}

/** Call a native function (sync or async) and rethrow its errors as named classes. */
function wrapNative (fn) {
  try {
    const out = fn()
    if (out && typeof out.then === 'function') return out.catch((e) => { throw fromNative(e) })
    return out
  } catch (e) {
    throw fromNative(e)
  }
}

function errorFor (code, message, props) {
  const cls = byCode[code]
  if (!cls) throw new Error(`unknown error code ${code}`)
  return new cls(message, props)
}

// Errors raised by the JavaScript layer only (VMFactory, CLI). Not in CODES, which lists what the addon can raise.
class CapacityError extends LibvmsError {
  constructor (message = 'This host is at maximum capacity', props) { super(message, 'AT_CAPACITY', props) }
}
class UsageError extends LibvmsError {
  constructor (message, props) { super(message, 'USAGE', props) }
}

module.exports = {
  ...classes,
  CapacityError,
  UsageError,
  fromNative,
  wrapNative,
  errorFor,
  CODES: Object.keys(CLASS_NAMES)
}
