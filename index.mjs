// ESM entry: `import { VM, errors } from 'libvms'`. The package is CommonJS; this re-exports its names.
import libvms from './index.js'

export const {
  VM,
  VMFactory,
  CallLog,
  DatArchive,
  Verifier,
  RPCServer,
  RPCClient,
  ReplicationHost,
  addPeer,
  generateKeyPair,
  errors
} = libvms
export default libvms
