'use strict'
// Writes crates/calllog/tests/fixtures/call-entries.json: calls as a client might send them (params as wire text,
// with odd spellings of numbers, keys and escapes), each with the entry bytes that lib/call-log.js writes for it
// (through a real CallLog, as lib/vm.js `_execute` makes it). crates/calllog's entry test builds the same entries
// in Rust and compares bytes. Run: node scripts/call-entry-fixtures.js
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const CallLog = require('../lib/call-log')

// mulberry32: a small seeded generator, so the fixture is the same every run.
let seed = 12345
function rand (n) {
  seed = (seed + 0x6D2B79F5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return (((t ^ (t >>> 14)) >>> 0) / 4294967296 * n) | 0
}

// Numbers that serde_json (Rust's parser of the request) reads exactly; for the rare others (more than 19 digits, or
// a power of ten past 22) both today's path and Rust's entry write serde_json's reading of the number, so the
// direct JSON.parse below could not stand for them.
const NUMBERS = ['0', '-0', '-0.0', '1', '1.0', '1.50', '1e2', '1E21', '1e-7', '0.000001', '18446744073709551615',
  '9007199254740993', '-12.5e-3', '2.5e+22', '-9223372036854775808', '7e22', '0.1', '100000000000000000000',
  '4294967295', '-1e-6', '3.141592653589793', '1e-22', '123.456e-10']
const STRINGS = ['"a"', '""', '"\\u0041\\u00e9"', '"é ☃ 𝄞"', '"\\u001f\\b\\f\\n\\r\\t\\/"', '"\\u2028\\u2029"', '"\\"\\\\"',
  '"\\u007f"', '"\\ud83d\\ude00"']
const KEYS = ['"b"', '"a"', '"10"', '"2"', '"01"', '"-1"', '"4294967294"', '"4294967295"', '"__proto__"', '"é"', '""']

function value (depth) {
  const r = rand(depth > 2 ? 5 : 7)
  const ws = [' ', '', '\n ', ''][rand(4)]
  if (r === 0) return NUMBERS[rand(NUMBERS.length)]
  if (r === 1) return STRINGS[rand(STRINGS.length)]
  if (r === 2) return ['true', 'false', 'null'][rand(3)]
  if (r === 3 || r === 4) return NUMBERS[rand(NUMBERS.length)]
  if (r === 5) {
    const n = rand(4)
    return '[' + ws + Array.from({ length: n }, () => value(depth + 1)).join(',' + ws) + ']'
  }
  const n = rand(5)
  return '{' + Array.from({ length: n }, () => KEYS[rand(KEYS.length)] + ws + ':' + value(depth + 1)).join(',') + '}'
}

async function main () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-fixture-'))
  const log = await CallLog.create(dir, 'exports.f = () => 1', 'dat://' + 'ab'.repeat(32))
  const cases = []
  for (let i = 0; i < 200; i++) {
    const params = '[' + Array.from({ length: rand(4) }, () => value(0)).join(', ') + ']'
    const userId = ['', 'bob', 'é"\\'][rand(3)]
    const methodName = ['f', 'add', 'ünï"code'][rand(3)]
    const filesVersion = rand(3) === 0 ? 1 : rand(100000)
    const kind = rand(4)
    const ended = kind === 0 ? { res: value(0) } : kind === 1 ? {} : kind === 2 ? { err: ['TypeError', 'Error', 'my "name"'][rand(3)] } : { res: '[1,{"a":2}]' }
    const extra = []
    if (rand(3) === 0) extra.push(['stopped', JSON.stringify(['timeout', 'memory'][rand(2)])])
    if (rand(3) === 0) extra.push(['auth', JSON.stringify({ key: 'ab'.repeat(32), seq: 1700000000000000 + i, sig: 'cd'.repeat(64) })])
    if (rand(4) === 0) extra.push(['oracles', JSON.stringify([{ api: 'http', method: 'get', args: ['x'], res: 1.5 }])])
    // The entry as lib/vm.js makes it: the arguments through JSON.parse + JSON.stringify, the extras after.
    const argsJSON = JSON.stringify(JSON.parse(params))
    const entry = { userId, methodName, filesVersion, err: undefined }
    for (const [k, json] of extra) entry[k] = JSON.parse(json)
    let resJSON
    if (ended.err !== undefined) { entry.err = new Error('x'); entry.err.name = ended.err } else if (ended.res !== undefined) resJSON = JSON.stringify(JSON.parse(ended.res))
    const seq = await log.enqueueCallJSON(entry, argsJSON, resJSON)
    const bytes = await log.get(seq, { valueEncoding: 'utf-8' })
    cases.push({ params, methodName, userId, filesVersion, res: resJSON, err: ended.err === undefined ? undefined : JSON.stringify(ended.err), extra, entry: bytes })
  }
  await log.close()
  fs.rmSync(dir, { recursive: true, force: true })
  const out = path.join(__dirname, '..', 'crates', 'calllog', 'tests', 'fixtures', 'call-entries.json')
  fs.writeFileSync(out, JSON.stringify(cases, null, 1) + '\n')
  console.log(`${cases.length} entries written to ${out}`)
}

main().catch((e) => { console.error(e); process.exit(1) })
