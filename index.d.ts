// Type definitions for libvms (the parts implemented so far: CallLog, DatArchive and the error classes).
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
   * Rejects with ConnectionError (no peer reachable) or TimeoutError after `timeout` ms (default 10000).
   */
  static fetch (url: string, dir?: string | null, opts?: { peers?: string[], timeout?: number }): Promise<CallLog>
  readonly dir: string
  /** `dat://` + 64 hex characters of the public key. */
  readonly url: string
  readonly key: Buffer
  readonly discoveryKey: Buffer
  readonly length: number
  readonly byteLength: number
  readonly writable: boolean
  readonly closed: boolean
  /** Append any JSON value; resolves with its index once durable. */
  append (entry: unknown): Promise<number>
  appendInit (init: { code: string, filesArchiveUrl: string }): Promise<number>
  appendCall (call: AppendCallOptions): Promise<number>
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
   * it (resuming into `localPath`, or a temporary folder) verified block by block. Read-only when fetched.
   */
  constructor (url: string, opts: { localPath?: string, peers?: string[], timeout?: number })
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
  /** Resolves at once for local data. */
  download (path?: string): Promise<void>
  close (): Promise<void>
}

export type ErrorCode =
  | 'IO_ERROR' | 'STORAGE_LOCKED' | 'STORAGE_CORRUPT' | 'NOT_A_CORE' | 'VERIFICATION_FAILED'
  | 'INVALID_SIGNATURE' | 'OUT_OF_BOUNDS' | 'NOT_WRITABLE' | 'CLOSED' | 'BAD_ARGUMENT' | 'ENCODING_ERROR'
  | 'INVALID_PROOF' | 'INTERNAL' | 'NOT_FOUND' | 'ENTRY_ALREADY_EXISTS' | 'PARENT_FOLDER_DOESNT_EXIST'
  | 'INVALID_PATH' | 'ARCHIVE_NOT_WRITABLE' | 'DEST_DIRECTORY_NOT_EMPTY' | 'INVALID_ENCODING'
  | 'VERIFICATION_MISMATCH' | 'TIMEOUT' | 'CONNECTION_FAILED'

/** Base class of every libvms error: `code` is stable, `name` is the class name. */
export class LibvmsError extends Error {
  readonly code: ErrorCode
  /** For integrity errors: the first bad block or entry. */
  readonly index?: number
}
declare class CodedError extends LibvmsError {
  constructor (message?: string, props?: object)
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
  export const CODES: ErrorCode[]
  export function errorFor (code: ErrorCode, message?: string, props?: object): LibvmsError
}

/** Serves call logs and archives to any hypercore@10 peer (ours or npm `hypercore`) over TCP. */
export class ReplicationHost {
  /** Listen on `host:port` (default 127.0.0.1 and an OS-chosen port). */
  static listen (opts?: { host?: string, port?: number }): Promise<ReplicationHost>
  readonly port: number
  /** `host:port`, to hand to fetchers. */
  readonly address: string
  /** Serve an open CallLog, or both logs of a DatArchive. */
  add (source: CallLog | DatArchive): Promise<ReplicationHost>
  /** Stop listening and end every session. */
  close (): Promise<void>
}

/** Add a `host:port` peer for every later fetch; returns a function that removes it. */
export function addPeer (address: string): () => void
