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
 * A replayed call `c` has ended: what its worker reported (`replayed`: the number of recorded uses it was served,
 * or where it diverged, `[position, api, method, argsText]` as JSON text) becomes its uses and divergence.
 */
function replayed (c, report) {
  if (typeof report === 'string') {
    const [use, api, method, argsText] = JSON.parse(report)
    c.uses = c.recorded.slice(0, use)
    c.divergence = { use, recorded: c.recorded[use], asked: { api, method, args: parseOr(argsText) } }
  } else c.uses = report === c.recorded.length ? c.recorded : c.recorded.slice(0, report || 0)
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

module.exports = { use, describe, replayed }

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
