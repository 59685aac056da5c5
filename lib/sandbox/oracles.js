'use strict'
// Oracle uses: a script's calls to addAPI members (System[name][method]). On the host each use runs the host method
// once and its outcome is recorded, in the order the script made the uses, for the call that made them (its log
// entry's `oracles`). A replayed call is served its recorded outcomes instead, inside its worker (bootstrap.js
// `served`; the host method never runs); a use that differs from the record (API, method or arguments) is a
// divergence, which fails the replay.
//
// Record: `{api, method, args, value}` (no `value`: the method gave undefined) or `{api, method, args, error:
// {name, message, code?}}`. Uses may overlap (Promise.all): they are numbered as the script makes them, and their
// outcomes reach the script in that same order, on the host and in a replay alike.
const { decodeArgs, encodeResult, errorFields } = require('./wire')
const { RawJSON } = require('../json')

/** A request from the script for `System[api][method]`, made during call `seq` (0: outside any call). */
function use (sandbox, worker, id, api, method, argsText, seq) {
  const head = sandbox._inflight[sandbox._head]
  const call = seq && head && head.seq === seq ? head : null
  const reply = (m) => { if (worker === sandbox._worker) worker.postMessage(m) }
  if (!call) {
    // Nothing would record it: a use belongs to a call.
    reply(['reply', id, 'err', JSON.stringify(['Error', `System.${api}.${method} is only allowed during a call (its outcome is logged with the call)`, null])])
    return
  }
  const record = { api, method, args: JSON.parse(argsText) }
  call.uses.push(record)
  const running = run(sandbox, record, id, api, method, argsText)
  sandbox._requests.add(running)
  // Outcomes reach the script in the order of the uses.
  const previous = call.tail || Promise.resolve()
  call.tail = previous.then(() => running).then((m) => {
    sandbox._requests.delete(running)
    reply(m)
  })
}

async function run (sandbox, record, id, api, method, argsText) {
  try {
    const text = encodeResult(await sandbox._perform(api, method, decodeArgs(argsText)))
    if (text !== undefined) record.value = JSON.parse(text)
    return ['reply', id, 'ok', text]
  } catch (e) {
    const [name, message, code] = errorFields(e)
    record.error = code === null ? { name, message } : { name, message, code }
    return ['reply', id, 'err', JSON.stringify([name, message, code])]
  }
}

/**
 * A replayed call's oracle records: the JSON text of its entry's `oracles` as the log holds it (sent to the worker,
 * and written into the replica's entry as is when every record was served), parsed here only when a divergence
 * message needs them. `list` may be given when they were parsed already.
 */
class Recorded extends RawJSON {
  constructor (text, list, original) {
    super(text)
    this._list = list
    this._count = list ? list.length : undefined
    this.original = original // the log's entry, for enqueueReplayed (lib/replay-entries.js)
  }

  get list () {
    if (this._list === undefined) this._list = JSON.parse(this.rawJSON)
    return this._list
  }

  /** How many records (known without parsing once the worker has served them all). */
  get length () {
    return this._count !== undefined ? this._count : (this._count = this.list.length)
  }
}

const NONE = new Recorded('[]', Object.freeze([]))
const RECORDS = Symbol('oracle records') // lib/replay-entries.js: an entry's `oracles`, left as text (a Recorded)

/** The records of a replayed call's log entry. */
function recordedOf (entry) {
  const rec = entry[RECORDS]
  if (rec !== undefined) return rec
  const list = entry.oracles
  return Array.isArray(list) && list.length > 0 ? new Recorded(JSON.stringify(list), list) : NONE
}

/**
 * A replayed call `c` has ended: what its worker reported (`replayed`) becomes its uses and divergence. The report is
 * the number of records served when they were all served; otherwise JSON text: `[position, api, method, argsText]`
 * (it asked for something else), `[position]` (it asked for nothing more) or `[-1, message]` (the records are not
 * JSON). Nothing reported (the call ended outside its turn): none was served.
 */
function replayed (c, report) {
  const rec = c.recorded
  if (typeof report === 'number') {
    if (rec._count === undefined) rec._count = report
    if (report > 0) c.uses = rec // the entry's records, written into the replica's entry as they are
    return
  }
  if (typeof report !== 'string') {
    try {
      if (rec.length > 0) c.divergence = { use: 0, recorded: rec.list[0], asked: undefined }
    } catch (e) {
      c.divergence = { invalid: e.message }
    }
    return
  }
  const [use, api, method, argsText] = JSON.parse(report)
  if (use < 0) {
    c.divergence = { invalid: String(api) }
    return
  }
  c.uses = rec.list.slice(0, use)
  c.divergence = { use, recorded: rec.list[use], asked: api === undefined ? undefined : { api, method, args: parseOr(argsText) } }
}

function parseOr (text) {
  try { return JSON.parse(text) } catch (_) { return text }
}

/** `System.api.method(args)` of a record, for messages. */
function describe (r) {
  if (r === null || typeof r !== 'object') return String(r === undefined ? 'nothing' : JSON.stringify(r))
  const args = JSON.stringify(r.args)
  return `System.${r.api}.${r.method}(${args === undefined ? '' : args.slice(1, -1)})`
}

module.exports = { use, describe, replayed, recordedOf, Recorded, RECORDS }

/** `{name: [method, ...]}` of a VM's addAPI members (what a log's init entry records), or undefined when none. */
function namesOf (apis) {
  let out
  for (const [name, methods] of apis) {
    if (!out) out = {}
    out[name] = Object.keys(methods || {}).filter((k) => typeof methods[k] === 'function')
  }
  return out
}

/** The APIs a replica offers for logged names: every use is served from the log, so none may ever run. */
function replayAPIs (names) {
  const apis = new Map()
  if (names === null || typeof names !== 'object') return apis
  for (const name of Object.keys(names)) {
    const methods = {}
    for (const m of Array.isArray(names[name]) ? names[name] : []) {
      if (typeof m !== 'string') continue
      methods[m] = () => { throw new Error(`System.${name}.${m}: a replica has no host API (outcomes come from the log)`) }
    }
    apis.set(name, methods)
  }
  return apis
}

module.exports.namesOf = namesOf
module.exports.replayAPIs = replayAPIs
