// Type definitions for libvms: VM, VMFactory, CallLog, DatArchive, Verifier, RPCServer, RPCClient and the error classes.
/// <reference types="node" />
import { EventEmitter } from 'node:events'

export type ValueEncoding = 'json' | 'utf-8' | 'utf8' | 'binary' | 'buffer'

export interface InitEntry {
  type: 'init'
  code: string
  filesArchiveUrl: string
}

export interface CallEntry {
  type: 'call'
  call: { methodName: string, args: unknown[], userId?: string }
  result: { filesVersion: number, res?: unknown, err?: string }
  [extra: string]: unknown
}

export type LogEntry = InitEntry | CallEntry | { type: string, [key: string]: unknown }

export interface AppendCallOptions {
  methodName: string
  args: unknown[]
  userId?: string
  res?: unknown
  /** An Error (its `name` is logged, falling back to its message) or a name. */
  err?: Error | string | null
  filesVersion: number
  /** Extra fields are kept in the entry. */
  [extra: string]: unknown
}

export interface GetOptions {
  valueEncoding?: ValueEncoding
  /** Wait for the entry to be appended instead of failing with OutOfBoundsError (default false). */
  wait?: boolean
  /** With `wait`: give up after this many ms with a TimeoutError (0 = no limit). */
  timeout?: number
}

export interface RangeOptions {
  start?: number
  end?: number
  valueEncoding?: ValueEncoding
}

/** The signed, append-only call log of a VM: a Hypercore-10 core readable by npm `hypercore@10`. */
export class CallLog extends EventEmitter {
  /** Create a log in `dir`; entry 0 is `{type:'init', code, filesArchiveUrl}`. */
  static create (dir: string, code: string, filesArchiveUrl: string): Promise<CallLog>
  /** Open an existing log (writable when its secret key is stored in it). */
  static open (dir: string): Promise<CallLog>
  /**
   * Download the log `url` from peers (`opts.peers`, env LIBVMS_PEERS, `addPeer`) into `dir` (memory when omitted),
   * every entry verified. Resolves when complete; then follows live appends (`append` events) until closed.
   * Rejects with ConnectionError (no peer reachable) or TimeoutError after `timeout` ms (default 10000), and with a
   * ConnectionError at once when no peer is configured at all.
   */
  static fetch (url: string, dir?: string | null, opts?: { peers?: string[], timeout?: number } & SwarmOptions): Promise<CallLog>
  readonly dir: string
  /** `dat://` + 64 hex characters of the public key. */
  readonly url: string
  readonly key: Buffer
  readonly discoveryKey: Buffer
  readonly length: number
  readonly byteLength: number
  readonly writable: boolean
  readonly closed: boolean
  /** Append any JSON value; resolves with its index once durable. After a failed commit, every later append rejects. */
  append (entry: unknown): Promise<number>
  appendInit (init: { code: string, filesArchiveUrl: string }): Promise<number>
  appendCall (call: AppendCallOptions): Promise<number>
  /** Like `append`, but an entry JSON cannot hold throws synchronously and nothing is queued; entries queue in call
   * order, so callers may go on before the returned promise (durability) settles. */
  enqueue (entry: unknown): Promise<number>
  enqueueCall (call: AppendCallOptions): Promise<number>
  /** A verified read. */
  get (seq: number, opts?: GetOptions): Promise<any>
  list (opts?: RangeOptions): Promise<any[]>
  /** Streams entries without holding the log in memory. */
  entries (opts?: RangeOptions): AsyncIterableIterator<any>
  [Symbol.asyncIterator] (): AsyncIterableIterator<any>
  /** Checks the signature and every entry; rejects with an IntegrityError whose `index` is the first bad entry. */
  verify (): Promise<true>
  close (): Promise<void>
  on (event: 'append', listener: (seq: number) => void): this
  on (event: 'close', listener: () => void): this
}

export type FileEncoding = 'utf8' | 'utf-8' | 'hex' | 'base64' | 'binary' | 'buffer'

export interface ArchiveStat {
  isFile (): boolean
  isDirectory (): boolean
  size: number
  blocks: number
  downloaded: number
  mtime: Date
  ctime: Date
}

export interface ArchiveInfo {
  key: string
  url: string
  isOwner: boolean
  version: number
  peers: number
  title?: string
  description?: string
  type?: string
}

export interface HistoryRecord {
  type: 'put' | 'del'
  path: string
  version: number
}

/**
 * A VM's files archive, with Beaker's DatArchive API, stored in the Hyperdrive 11 format (corestore@6 layout) that
 * npm `hyperdrive@11` + `corestore@6` open. `version` counts writes: 1 right after create, +1 per entry written.
 */
export class DatArchive {
  static create (opts: { localPath: string, title?: string, description?: string, type?: string }): Promise<DatArchive>
  /**
   * Reopen the archive `url` stored at `localPath`, or, with peers (`opts.peers`, LIBVMS_PEERS, `addPeer`), download
   * it (resuming into `localPath`, or a temporary folder) verified block by block. Read-only when fetched; it then
   * follows the files written on the host until closed, unless `live` is false. A live fetch is sparse: the open
   * fetches the header only, and `stat`/`readFile`/`readdir`/`download(path)` fetch just the blocks that path needs;
   * `sparse: false` (or `live: false`) downloads the whole archive at open.
   */
  constructor (url: string, opts?: { localPath?: string, peers?: string[], timeout?: number, live?: boolean, sparse?: boolean } & SwarmOptions)
  /** Resolves once open; rejects with the open's error (STORAGE_LOCKED, NOT_A_CORE, BAD_ARGUMENT for a wrong url). */
  ready (): Promise<this>
  readonly url: string
  readonly key: Buffer
  readonly version: number
  readonly writable: boolean
  getInfo (): Promise<ArchiveInfo>
  stat (path: string): Promise<ArchiveStat>
  readFile (path: string, opts?: FileEncoding | { encoding?: FileEncoding }): Promise<any>
  readdir (path?: string, opts?: { recursive?: boolean, stat?: false }): Promise<string[]>
  readdir (path: string, opts: { recursive?: boolean, stat: true }): Promise<Array<{ name: string, stat: ArchiveStat }>>
  writeFile (path: string, data: string | Buffer | Uint8Array | ArrayBuffer, opts?: FileEncoding | { encoding?: FileEncoding }): Promise<void>
  mkdir (path: string): Promise<void>
  unlink (path: string): Promise<void>
  rmdir (path: string, opts?: { recursive?: boolean }): Promise<void>
  rename (src: string, dst: string): Promise<void>
  copy (src: string, dst: string): Promise<void>
  history (opts?: { start?: number, end?: number, reverse?: boolean }): Promise<HistoryRecord[]>
  /** A read-only view of the archive at `version`. */
  checkout (version: number): DatArchive
  /**
   * Resolves once `path` is held locally: a file's content, or every file under a folder ('/': everything). A sparse
   * fetched archive fetches only those blocks (and the metadata that finds them); at once for local data.
   */
  download (path?: string): Promise<void>
  close (): Promise<void>
}

// --- VM, Verifier and VMFactory ---

export interface DeployOptions {
  dir: string
  /** Written to the archive's `/dat.json` and to `<dir>/meta.json` on a new dir. */
  title?: string
  /** When given for an existing dir, it must be the files archive URL stored there. */
  url?: string
}

export interface ExecuteCallOptions {
  methodName: string
  /** JSON-representable arguments; the method receives them as the log stores them. */
  args?: unknown[]
  userId?: string
}

export interface ReplayOptions {
  /** Where the replica lives (a temp dir, removed at close, when absent). A dir holding an earlier replica of the same
   * log is replayed afresh; one holding anything else is refused (EntryAlreadyExistsError). */
  dir?: string
  title?: string
  /** Called with (entries done, total entries), init included: (1, total) at the start, then after each entry
   * up to (total, total). Throwing from it stops the replay (the replica is closed and the error rethrown). */
  onProgress?: (done: number, total: number) => void
  /** Replay exactly entries 0..length-1 (default: the log's length when called), however the log grows meanwhile. */
  length?: number
  /** A signed head to hold for the snapshot (default: the log's signed head when called): replays 0..head.length-1
   * unless `length` says less; the log must hold its tree at the start and once replayed (ForkError otherwise). */
  head?: SignedHead
}

/**
 * A script run as an auditable service. Calls run strictly one at a time in arrival order; each is appended to the
 * call log (`{type:'call', call, result}`) and the caller hears its outcome once the entry is durable.
 */
/** Limits on a VM script (see the README's Sandbox section). */
export interface VMLimits {
  /** A call (or the script's load) running longer is stopped: LimitError. Default 10000. */
  callTimeoutMs?: number
  /** The script's JS heap, and separately its array buffers, past this are stopped: LimitError. Default 256. */
  memoryMb?: number
}

/** One oracle use in a call entry's `oracles` (absent when the call made none). No `value` and no `error`: the
 * host method gave undefined. */
export type OracleRecord =
  | { api: string, method: string, args: any[], value?: any }
  | { api: string, method: string, args: any[], error: { name: string, message: string, code?: string } }

/** On a VerificationError from a replay whose call used the outside world otherwise than its entry says. */
export interface OracleDivergence {
  /** The entry. */
  index: number
  /** The oracle use's position in the entry's `oracles` (absent for the clock). */
  use?: number
  /** What the log holds there (an OracleRecord, the logged time, or undefined: nothing). */
  recorded?: any
  /** What the replay asked for (`{api, method, args}`, the time read, or undefined: nothing). */
  asked?: any
}

export class VM extends EventEmitter {
  /** `limits`: see Sandbox in the README. `auth: 'signed'`: every RPC call must be signed (see README, Signed
   * calls); default `'debug'`. `deterministic` (default true, recorded in the init entry): Math.random is seeded
   * from the log and Date reads the call's logged time (README, Oracles and deterministic execution). */
  constructor (code: string, opts?: { limits?: VMLimits, auth?: 'debug' | 'signed', deterministic?: boolean })
  /** The limits in force (defaults filled in). */
  readonly limits: Required<VMLimits>
  readonly auth: 'debug' | 'signed'
  readonly deterministic: boolean
  /** A fresh UUID v4. */
  readonly id: string
  code: string
  dir: string | null
  // Typed as ready: programs use these after `await vm.deploy(...)`. At run time they are null before deploy and
  // after close.
  /** The script's exports as seen from the host: its keys in order; a function export here makes a logged call
   * (`executeCall`), anything else is a JSON copy. The script's own objects stay in its realm. */
  exports: Record<string, any>
  filesArchive: DatArchive
  callLog: CallLog
  /** After `deploy` reopened a dir: what crash recovery undid (the archive rolled back to the `filesVersion` the
   * durable log names), or null when the archive already matched the log. */
  recovery: VMRecovery | null
  /** New dir: creates archive, log and meta.json. Existing dir: reopens them (rolling the archive back to what the
   * log accounts for: emits `recovery`) and logs `{type:'restart'}`.
   * Then evaluates the script and awaits its `init` (logged). On a new dir, rejects with init's error if it
   * throws; on a restart, init's error is only logged and emitted as 'warning', and the VM serves.
   * Resolves with the VM itself, ready. */
  deploy (opts: DeployOptions): Promise<this>
  /** Resolves with the method's result (as JSON data), or rejects with what it threw (an Error with the script
   * error's name and message; a TypeError for a missing method, an EncodingError for a result JSON cannot hold, a
   * LimitError for a call stopped by a limit). Either way the call is logged. */
  executeCall (call: ExecuteCallOptions): Promise<any>
  /** Adds `System[name]` for scripts evaluated afterwards. In the script each function member is async: it takes
   * JSON data (and bytes) and resolves with the host function's result as JSON data. Each member is an oracle: a
   * use runs on the host once, during a call, and its outcome is logged in that call's entry (`oracles`, see
   * `OracleRecord`); a replay serves the logged outcome and never runs it. */
  addAPI (name: string, methods: Record<string, any>): void
  /** Stops the running call now, as a limit would (logged as `stopped: reason`); the script restarts before the
   * next call. */
  stopScript (reason?: string): void
  /** Closes the archive and the log after the running calls; idempotent. */
  close (): Promise<void>
  /** Replays a log in a fresh VM: entry 0 must be the init entry naming `filesArchiveUrl`; every later entry is
   * executed again, in order, and nothing else. Streams the log. Oracle uses are served from the log; a replayed
   * call that uses them otherwise (another API, method or arguments, more or fewer uses) or reads the clock
   * otherwise rejects with a VerificationError carrying `OracleDivergence` fields. */
  static fromCallLog (callLog: CallLog, urls: { filesArchiveUrl: string }, opts?: ReplayOptions): Promise<VM>
  /** On a replica made by `fromCallLog`: the signed head it held for its snapshot (its tree checked once replayed). */
  replayedHead?: SignedHead
  on (event: 'ready' | 'close', listener: () => void): this
  /** An `init` that threw on a restart: `cause` is what it threw, `entry` its log entry. */
  on (event: 'warning', listener: (warning: Error & { cause: unknown, entry: number }) => void): this
  /** An error the script threw outside any call (a timer callback, an unhandled rejection); `where` says which. */
  on (event: 'scriptError', listener: (err: Error & { where: 'timer' | 'rejection' | 'uncaught' }) => void): this
  /** `deploy` rolled the archive back: writes of calls whose entries never became durable were undone. */
  on (event: 'recovery', listener: (recovery: VMRecovery) => void): this
  /** A storage failure (full disk, I/O error) hit a call or its commit: calls fail with `StorageIOError` until the
   * VM is closed and deployed again. */
  on (event: 'stopped', listener: (cause: Error) => void): this
}

/** What crash recovery undid when a VM directory was reopened. */
export interface VMRecovery {
  /** The archive version the durable log accounts for (the `filesVersion` of its last call). */
  filesVersion: number
  /** Archive writes undone (each was made by a call with no durable entry). */
  writesUndone: number
  /** Content blocks dropped with them. */
  contentBlocks: number
}

/** A mismatch found by the Verifier. */
export interface LogMismatch {
  /** The first divergent entry. */
  index: number
  /** The entries there (undefined where one log has ended). */
  a: any
  b: any
}

export interface ArchiveMismatch {
  /** Paths only in the second archive, only in the first, and in both with different content. */
  added: string[]
  removed: string[]
  changed: string[]
}

export class Verifier {
  /** Resolves if both logs hold the same entries (entry 0: same type and code; later entries: equal as
   * canonical JSON); otherwise rejects with a VerificationError carrying `LogMismatch` fields. `length`: compare only
   * the first `length` entries of `a` (a snapshot of a log that keeps growing). */
  static compareLogs (a: CallLog, b: CallLog, opts?: { length?: number }): Promise<void>
  /** Checks every stored block of the archive's metadata and content cores against their signed trees; otherwise
   * rejects with an IntegrityError (`index` = the block) whose message names the core. */
  static checkArchiveStorage (archive: DatArchive): Promise<void>
  /** Resolves if both archives hold the same files with the same content (`/dat.json` ignored); otherwise rejects
   * with a VerificationError carrying `ArchiveMismatch` fields. */
  static compareArchives (a: DatArchive, b: DatArchive): Promise<void>
  /** Resolves when `callLog` holds the signed call `receipt` names at `index` under that signed head; rejects with a
   * VerificationError otherwise, or a ForkError (`ours`, `theirs`: both signed heads) when the log's signed tree
   * disagrees with the receipt's. */
  static checkReceipt (receipt: Receipt, callLog: CallLog): Promise<void>
  /** Two heads validly signed by `key` with the same length and fork and different tree hashes. */
  static isFork (key: Buffer, a: SignedHead, b: SignedHead): boolean
  /** The log's current signed tree head, checked against its key: the head an audit holds for its snapshot. */
  static signedHead (callLog: CallLog): Promise<SignedHead>
  /** Resolves when `callLog` still holds the tree `head` signed at its length; rejects with a ForkError (`ours`: the
   * log's head now, `theirs`: `head`) when it holds another, or a VerificationError when `head` is not signed by the
   * log's key or the log is now shorter. */
  static checkHead (head: SignedHead, callLog: CallLog): Promise<void>
}

/** A log's signed tree head (hex strings). */
export interface SignedHead { length: number, fork: number, treeHash: string, signature: string }
/** What the reply to a signed call carries: the log's signed head at a length holding the call, the call's index, and
 * `call`, the BLAKE2b-256 (hex) of the signed request. */
export interface Receipt extends SignedHead { index: number, call: string }

/** A new Ed25519 key pair for `new RPCClient({ keyPair })` (`secretKey`: 64 bytes, seed then public key). */
export function generateKeyPair (): { publicKey: Buffer, secretKey: Buffer }

/** What `provisionVM` returns (and what a factory script gets from `System.vms.provisionVM`). */
export interface ProvisionedVMInfo {
  id: string
  callLogUrl: string
  filesArchiveUrl: string
  /** The VM's RPC URL (the factory's URL + id), only when the factory knows its URL (setRPCServer's `url`). */
  rpcUrl?: string
}

/** Anything with the RPCServer's mount/unmount. */
export interface VMMounter {
  mount (path: string, vm: VM): unknown
  unmount (path: string): unknown
}

/**
 * A VM whose script provisions other VMs through `System.vms.{provisionVM, shutdownVM}`. VM `id` lives in
 * `<factory dir>/<id>` and is served at `/<id>`; a factory redeployed on the same dir brings back its live VMs.
 */
export class VMFactory extends VM {
  /** `limits`: the factory script's own; `vmLimits`: the most a provisioned VM gets (the host's policy). */
  constructor (code: string, opts?: { maxVMs?: number, limits?: VMLimits, vmLimits?: VMLimits, auth?: 'debug' | 'signed', deterministic?: boolean })
  readonly maxVMs: number
  readonly vmLimits: Required<VMLimits>
  /** The live VMs, by id. */
  VMs: Record<string, VM>
  readonly numVMs: number
  /** Mount provisioned VMs on `server` at `/<id>`. `url`: the factory's public ws(s):// URL; provisionVM then
   * also returns each VM's `rpcUrl`. */
  setRPCServer (server: VMMounter, opts?: { url?: string }): void
  /** Rejects with CapacityError ("This host is at maximum capacity") at maxVMs, BadArgumentError for bad code. */
  /** `auth` defaults to the factory's own mode. */
  provisionVM (opts: { code: string, title?: string, limits?: VMLimits, auth?: 'debug' | 'signed' }): Promise<ProvisionedVMInfo>
  shutdownVM (id: string): Promise<void>
  getVM (id: string): VM | undefined
}

export type ErrorCode =
  | 'IO_ERROR' | 'STORAGE_LOCKED' | 'STORAGE_CORRUPT' | 'NOT_A_CORE' | 'VERIFICATION_FAILED'
  | 'INVALID_SIGNATURE' | 'OUT_OF_BOUNDS' | 'NOT_WRITABLE' | 'CLOSED' | 'BAD_ARGUMENT' | 'ENCODING_ERROR'
  | 'INVALID_PROOF' | 'INTERNAL' | 'NOT_FOUND' | 'ENTRY_ALREADY_EXISTS' | 'PARENT_FOLDER_DOESNT_EXIST'
  | 'INVALID_PATH' | 'ARCHIVE_NOT_WRITABLE' | 'DEST_DIRECTORY_NOT_EMPTY' | 'INVALID_ENCODING'
  | 'VERIFICATION_MISMATCH' | 'TIMEOUT' | 'CONNECTION_FAILED' | 'LIMIT_EXCEEDED' | 'FORK'
  | 'AT_CAPACITY' | 'USAGE' // raised by the JavaScript layer only

/** Base class of every libvms error: `code` is stable, `name` is the class name. */
export class LibvmsError extends Error {
  readonly code: ErrorCode
  /** For integrity errors: the first bad block or entry. */
  readonly index?: number
}
declare class CodedError extends LibvmsError {
  constructor (message?: string, props?: object)
}

// ---- RPC (wire-compatible with libvms 2 and nodevms-client 2.0.0) ----

/** What `RPCServer.mount` needs of a VM (a deployed `VM` or `VMFactory`). */
export interface MountableVM {
  exports: Record<string, unknown>
  callLog: { url: string }
  filesArchive: { url: string }
  executeCall (call: { methodName: string, args: unknown[], userId?: string }): Promise<unknown>
  /** Extra fields of the handshake result. */
  rpcInfo?: Record<string, unknown>
}

export interface RPCServerOptions {
  /** Serve the call log and files archive of every mounted VM through this host, and name its port in the
   * handshake result (`replicationPort`). Same as calling `setReplicationHost`. By default `listen` starts one on
   * the same interface and an OS-chosen port (closed with the server); `false` serves no replication. */
  replication?: ReplicationHost | false
  /** Largest incoming message in bytes; a bigger one closes that connection (1009). Default 16 MiB. */
  maxMessageSize?: number
  /** Most open connections; more get HTTP 503. Default 1024. */
  maxConnections?: number
  /** Most calls waiting per VM; more are refused with -32000. Default 1000. */
  maxQueue?: number
  /** Most reply bytes queued to one slow reader before it is dropped. Default 64 MiB. */
  maxOutgoingSize?: number
  /** ms between pings of an idle connection. Default 30000. */
  pingInterval?: number
  /** ms of silence after which a connection is dropped; 0 = never. Default 60000. */
  idleTimeout?: number
  handshakeTimeout?: number
  closeTimeout?: number
  /** Most connections from one IP address; more are closed at once. Default 128. */
  maxConnectionsPerAddress?: number
  /** Most bytes of unfinished messages one IP address may hold beyond 64 KiB per connection; the connection that
   * would pass it is dropped. Default 32 MiB. */
  maxBufferedBytesPerAddress?: number
  /** The same across all addresses. Default 256 MiB. */
  maxBufferedBytes?: number
}

export class RPCServer {
  constructor (opts?: RPCServerOptions)
  /** Serve `vm` (a deployed VM or VMFactory, or anything mountable) at `path` (e.g. '/vm1'), before or after `listen`. */
  mount (path: string, vm: VM | MountableVM): void
  /** See `RPCServerOptions.replication`; applies to VMs mounted afterwards. */
  setReplicationHost (host: ReplicationHost): void
  /** Stop serving `path` (its connections close; queued calls still run). Whether something was mounted. */
  unmount (path: string): boolean
  /** Default port 5555, default host every interface; port 0 lets the OS choose. */
  listen (port?: number | { port?: number, host?: string }): Promise<{ port: number, address: string }>
  address (): { port: number, address: string } | null
  readonly port: number | null
  readonly connections: number
  readonly mounts: string[]
  /** Calls waiting at `path` (not counting the running one), or null. */
  queued (path: string): number | null
  /** Resolves once every connection is closed and every accepted call has finished. */
  close (): Promise<void>
}

/** The `error` member of a JSON-RPC reply, as a rejected call receives it. */
export interface RPCWireError { code: number, message: string, data?: unknown }

export class RPCClient extends EventEmitter {
  /** `timeout`: reply timeout of each call in ms (default 5000). `keyPair`: sign every call (signed VMs). */
  constructor (opts?: { timeout?: number, keyPair?: { publicKey: Buffer, secretKey: Buffer } })
  /** The receipt of the latest signed call answered. */
  lastReceipt: Receipt | null
  // Typed as connected: programs use these after `await client.connect(...)`; null before.
  url: string
  /** The handshake result. `replicationPort`, when the server replicates, is also remembered as a peer
   * (`<this client's host>:<port>`) for `CallLog.fetch` and `new DatArchive(url)`. */
  backendInfo: { methods: string[], callLogUrl: string, filesArchiveUrl: string, replicationPort?: number, [extra: string]: unknown }
  connect (url: string, opts?: { user?: string }): Promise<void>
  /** Call any method; rejects with an `RPCWireError`, a `TimeoutError` or a `ClosedError`. */
  call (method: string, args?: unknown[]): Promise<any>
  close (): Promise<void>
  on (event: 'open' | 'ready', listener: () => void): this
  on (event: 'error', listener: (err: unknown) => void): this
  on (event: 'close', listener: (code: number, reason: string) => void): this
  on (event: 'receipt', listener: (receipt: Receipt) => void): this
  /** One method per function exported by the VM (defined after the handshake). */
  [method: string]: any
}

export namespace errors {
  export { LibvmsError }
  export class StorageIOError extends CodedError {}
  export class StorageLockedError extends CodedError {}
  export class StorageCorruptError extends CodedError {}
  export class NotACoreError extends CodedError {}
  export class IntegrityError extends CodedError {}
  export class InvalidSignatureError extends CodedError {}
  export class OutOfBoundsError extends CodedError {}
  export class NotWritableError extends CodedError {}
  export class ClosedError extends CodedError {}
  export class BadArgumentError extends CodedError {}
  export class EncodingError extends CodedError {}
  export class InvalidProofError extends CodedError {}
  export class InternalError extends CodedError {}
  export class NotFoundError extends CodedError {}
  export class EntryAlreadyExistsError extends CodedError {}
  export class ParentFolderDoesntExistError extends CodedError {}
  export class InvalidPathError extends CodedError {}
  export class ArchiveNotWritableError extends CodedError {}
  export class DestDirectoryNotEmpty extends CodedError {}
  export class InvalidEncodingError extends CodedError {}
  export class VerificationError extends CodedError {}
  export class TimeoutError extends CodedError {}
  export class ConnectionError extends CodedError {}
  /** A VM call stopped by a limit; `stopped` names it ('callTimeoutMs', 'memoryMb', 'shutdown'). */
  export class LimitError extends CodedError { stopped?: string }
  /** Two validly signed heads of one log disagree (code FORK); `ours` and `theirs` are the heads. */
  export class ForkError extends CodedError { ours: SignedHead; theirs: SignedHead }
  /** VMFactory at maxVMs (code AT_CAPACITY). */
  export class CapacityError extends CodedError {}
  /** Bad command line (code USAGE). */
  export class UsageError extends CodedError {}
  export const CODES: ErrorCode[]
  export function errorFor (code: ErrorCode, message?: string, props?: object): LibvmsError
}

/** A Hyperswarm DHT node, as `'host:port'` or `{ host, port }`. */
export type BootstrapNode = string | { host: string, port: number }

/**
 * Joining the Hyperswarm DHT, always explicit: `swarm: true` joins the public DHT; `bootstrap` (or env
 * LIBVMS_BOOTSTRAP, comma-separated) joins a private one instead and implies joining. Loopback bootstrap nodes make
 * the node bind and announce on 127.0.0.1. Without any of these nothing touches the network.
 */
export interface SwarmOptions {
  swarm?: boolean | { bootstrap?: BootstrapNode[] }
  bootstrap?: BootstrapNode[]
}

/** Serves call logs and archives to any hypercore@10/11 peer (ours or npm `hypercore`) over TCP, and on the DHT. */
export class ReplicationHost {
  /**
   * Start listening on `host:port` (default 127.0.0.1 and an OS-chosen port); with swarm options, also announce on
   * the DHT. `add()` waits for the listen; `ready()` surfaces its failure.
   */
  constructor (opts?: { host?: string, port?: number } & SwarmOptions)
  /** Same as the constructor, resolving once listening. */
  static listen (opts?: { host?: string, port?: number } & SwarmOptions): Promise<ReplicationHost>
  /** Resolves once listening (rejects with CONNECTION_FAILED when the port cannot be bound). */
  ready (): Promise<this>
  /** null until listening. */
  readonly port: number | null
  /** `host:port`, to hand to fetchers; null until listening. */
  readonly address: string | null
  /** Whether this host announces what it serves on a Hyperswarm DHT. */
  readonly swarm: boolean
  /**
   * Serve an open CallLog, or both logs of a DatArchive; with a swarm, resolves once their discovery keys are announced.
   * `log`: the call log of the VM that writes this archive; peers then see the archive only up to the version its
   * durable entries account for (an RPCServer serves its VMs' archives this way).
   */
  add (source: CallLog | DatArchive, opts?: { log?: CallLog }): Promise<ReplicationHost>
  /** Resolves once everything added so far is announced (at once without a swarm). */
  announced (): Promise<void>
  /** Stop listening and end every session. */
  close (): Promise<void>
}

/** Add a `host:port` peer for every later fetch; returns a function that removes it. */
export function addPeer (address: string): () => void
