'use strict'
// The frictions a newcomer hit (issue 20), each driven through real `libvms` processes: calm progress, Ctrl+C,
// error messages with context, the REPL, argument parsing, pipes, the README's quick start.
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const { VM } = require('..')
const { tmpdir } = require('./helpers')
const { cli, serve, BIN, ENV } = require('./cli-helpers')
const { progressBar } = require('../lib/cli/progress')
const { PassThrough } = require('node:stream')

const ROOT = path.join(__dirname, '..')
const EXAMPLES = path.join(ROOT, 'examples')
const BIG = 50000

/** A stopped VM with BIG calls, made quickly: concurrent calls share group commits. */
async function bigVM (root, n = BIG) {
  const dir = path.join(root, `vm-${n}.libvms`)
  const vm = new VM('let n = 0\nexports.inc = (k) => { n += k; return n }')
  await vm.deploy({ dir, title: 'big' })
  const calls = []
  for (let i = 0; i < n; i++) calls.push(vm.executeCall({ methodName: 'inc', args: [1] }))
  await Promise.all(calls)
  await vm.close()
  return dir
}

const bigRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-test-big-'))
let big = null
let small = null
const SMALL = 300
test.before(async () => {
  big = await bigVM(bigRoot)
  small = await bigVM(bigRoot, SMALL)
})
test.after(() => fs.rmSync(bigRoot, { recursive: true, force: true }))

test('progress: on a terminal a bar with counts, rate and ETA, under 100 redraws for 50,000 calls; counts agree', async (t) => {
  if (spawnSync('script', ['--version']).error) return t.skip('no `script` to run a pseudo-terminal')
  // `script` runs verify on a pseudo-terminal and copies what it draws to our pipe.
  const cmd = [process.execPath, BIN, 'verify', big].map((a) => `'${a}'`).join(' ')
  const r = spawnSync('script', ['-qfec', cmd, '/dev/null'], { env: ENV, encoding: 'utf8', maxBuffer: 64 << 20 })
  assert.equal(r.status, 0, r.stdout + r.stderr)
  const frames = r.stdout.match(/replaying \[[=-]+\] \d+\/\d+ entries \| \d+\/s \| ETA /g) || []
  assert.ok(frames.length >= 2 && frames.length < 100, `${frames.length} redraws`)
  assert.ok(r.stdout.length < 20000, `${r.stdout.length} bytes of output`)
  const total = BIG + 1 // the init entry and the calls
  assert.match(frames[frames.length - 1], new RegExp(`\\] ${total}/${total} entries`))
  assert.match(r.stdout, new RegExp(`\\(snapshot at length ${total}\\)`))
  assert.match(r.stdout, new RegExp(`replayed ${total}/${total} entries`))
  assert.match(r.stdout, /VERIFIED/)
})

test('progress: verify ws:// shows the fetch on a terminal too (the same bar), and the counts agree', async (t) => {
  if (spawnSync('script', ['--version']).error) return t.skip('no `script` to run a pseudo-terminal')
  const dir = path.join(tmpdir(t), 'counter.libvms')
  const host = await serve(t, ['exec', path.join(EXAMPLES, 'persisted-counter.js'), '--port', '0', '--host', '127.0.0.1', '--dir', dir])
  for (let i = 0; i < 3; i++) assert.equal((await cli(['call', host.url, 'inc'])).code, 0)
  const cmd = [process.execPath, BIN, 'verify', host.url].map((a) => `'${a}'`).join(' ')
  const r = spawnSync('script', ['-qfec', cmd, '/dev/null'], { env: ENV, encoding: 'utf8' })
  assert.equal(r.status, 0, r.stdout + r.stderr)
  const frames = r.stdout.match(/fetching \[[=-]+\] \d+\/\d+ entries/g) || []
  assert.ok(frames.length >= 1, r.stdout)
  assert.match(frames[frames.length - 1], /\] 4\/4 entries/) // init and three calls
  assert.match(r.stdout, /snapshot at length 4/)
  assert.match(r.stdout, /VERIFIED/)
  // Off a terminal the same audit draws no bar.
  const plain = await cli(['verify', host.url])
  assert.equal(plain.code, 0, plain.stdout + plain.stderr)
  assert.doesNotMatch(plain.stdout + plain.stderr, /fetching \[/)
  await host.stop()
})

test('progress: libvms log into a file shows a bar on the terminal, and the file holds only the entries', async (t) => {
  if (spawnSync('script', ['--version']).error) return t.skip('no `script` to run a pseudo-terminal')
  const out = path.join(tmpdir(t), 'log.txt')
  const cmd = `'${process.execPath}' '${BIN}' log '${small}' > '${out}'`
  const r = spawnSync('script', ['-qfec', cmd, '/dev/null'], { env: ENV, encoding: 'utf8' })
  assert.equal(r.status, 0, r.stdout + r.stderr)
  assert.match(r.stdout, new RegExp(`printing \\[=+\\] ${SMALL + 1}/${SMALL + 1} entries`))
  const lines = fs.readFileSync(out, 'utf8').trim().split('\n')
  assert.equal(lines.length, SMALL + 1)
  assert.ok(lines.every((l) => /^#\d+ (init|call) /.test(l)))
})

test('progress: off a terminal nothing extra; --json and --quiet print one summary object', async () => {
  const plain = await cli(['verify', small])
  assert.equal(plain.code, 0)
  assert.equal(plain.stderr, '')
  assert.doesNotMatch(plain.stdout, /replaying \[/)
  for (const flag of ['--json', '--quiet']) {
    const r = await cli(['verify', small, flag])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, '')
    const lines = r.stdout.trim().split('\n')
    assert.equal(lines.length, 1, flag)
    const summary = JSON.parse(lines[0])
    assert.equal(summary.verdict, 'verified')
    assert.equal(summary.entries, SMALL + 1)
    assert.equal(summary.replayed, SMALL + 1)
    assert.equal(typeof summary.timeMs, 'number')
    assert.equal(summary.firstDivergence, null)
  }
})

test('verify --json names the first divergence of a nondeterministic script', async (t) => {
  const dir = path.join(tmpdir(t), 'random.libvms')
  const prev = process.env.NODE_ENV
  process.env.NODE_ENV = 'test' // System.test.random, in this process and the spawned verifier
  t.after(() => { process.env.NODE_ENV = prev })
  const vm = new VM('exports.roll = () => System.test.random()')
  await vm.deploy({ dir, title: 'random' })
  await vm.executeCall({ methodName: 'roll' })
  await vm.close()
  const r = await cli(['verify', dir, '--json'], { env: { ...ENV, NODE_ENV: 'test' } })
  assert.equal(r.code, 1, r.stdout + r.stderr)
  const summary = JSON.parse(r.stdout)
  assert.equal(summary.verdict, 'not verified')
  assert.equal(summary.firstDivergence.entry, 1)
  assert.equal(summary.firstDivergence.log.call.methodName, 'roll')
  assert.notEqual(summary.firstDivergence.log.result.res, summary.firstDivergence.replay.result.res)
  assert.match(r.stderr, /Call log mismatch/)
})

test('progress module: frames are bounded by steps, not by how often it is told, and it is silent off a TTY', async () => {
  const tty = Object.assign(new PassThrough(), { isTTY: true, columns: 120 })
  let out = ''
  tty.on('data', (d) => { out += d })
  const bar = progressBar(tty, { label: 'working' })
  for (let i = 1; i <= BIG; i++) {
    bar.update(i, BIG)
    if (i % 500 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  bar.stop()
  const frames = out.match(/working \[/g) || []
  assert.ok(frames.length >= 2 && frames.length < 100, `${frames.length} frames`)
  assert.match(out, new RegExp(`${BIG}/${BIG} entries`))

  const pipe = new PassThrough()
  let silent = ''
  pipe.on('data', (d) => { silent += d })
  const off = progressBar(pipe, { label: 'working' })
  for (let i = 1; i <= 1000; i++) off.update(i, 1000)
  off.stop()
  assert.equal(silent, '')
})

test('Ctrl+C during verify prints a message, exits 130 and leaves no temp folder', async (t) => {
  const tmp = tmpdir(t)
  const child = spawn(process.execPath, [BIN, 'verify', big], { env: { ...ENV, TMPDIR: tmp } })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += d })
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)))
  // Interrupt as the replay starts (the step line before it).
  await new Promise((resolve) => child.stdout.on('data', (d) => {
    stdout += d
    if (stdout.includes('signature and entries check out')) resolve()
  }))
  child.kill('SIGINT')
  const code = await exited
  assert.equal(code, 130, stdout + stderr)
  assert.match(stderr, /interrupted \(Ctrl\+C\): stopping and removing temporary files/)
  assert.doesNotMatch(stdout, /VERIFIED/)
  assert.deepEqual(fs.readdirSync(tmp), [])
})

test('errors say where and what next: syntax error, init, port in use, running dir, non-VM dir; nothing left behind', async (t) => {
  const work = tmpdir(t)
  const write = (name, code) => { fs.writeFileSync(path.join(work, name), code); return name }

  const syntax = await cli(['exec', write('broken.js', 'exports.a = () => {\n  return 1 }\n}\n'), '--port', '0'], { cwd: work })
  assert.equal(syntax.code, 2)
  assert.match(syntax.stderr, /^libvms: broken\.js:3: SyntaxError: Unexpected token '}'\n {2}}\n {2}\^\nFix the script/)

  const init = await cli(['exec', write('initfail.js', 'exports.init = async () => {\n  throw new Error("db not ready")\n}\n'), '--port', '0'], { cwd: work })
  assert.equal(init.code, 1)
  assert.match(init.stderr, /^libvms: init of initfail\.js threw: db not ready \(initfail\.js:2\); nothing was kept\. Fix init and run again\.\n$/)

  const top = await cli(['exec', write('top.js', 'exports.a = 1\nnope()\n'), '--port', '0'], { cwd: work })
  assert.equal(top.code, 1)
  assert.match(top.stderr, /running top\.js threw: ReferenceError: nope is not defined \(top\.js:2\)/)

  const blocker = net.createServer()
  await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.after(() => blocker.close())
  const busy = await cli(['exec', path.join(EXAMPLES, 'counter.js'), '--port', String(blocker.address().port)], { cwd: work })
  assert.equal(busy.code, 2)
  assert.match(busy.stderr, new RegExp(`port ${blocker.address().port} on 127\\.0\\.0\\.1 is in use.*--port 0 for any free port`))

  // None of the failed first runs left a VM directory.
  assert.deepEqual(fs.readdirSync(work).filter((n) => n.endsWith('.libvms')), [])

  const running = await serve(t, ['exec', path.join(EXAMPLES, 'counter.js'), '--port', '0'], { cwd: work })
  const second = await cli(['exec', path.join(EXAMPLES, 'counter.js'), '--port', '0'], { cwd: work })
  assert.equal(second.code, 2)
  assert.match(second.stderr, new RegExp(`${path.join(fs.realpathSync(work), 'counter.libvms').replace(/[.\\/]/g, '\\$&')} is in use by another process: is this VM already running\\?`))
  assert.equal((await running.stop()).code, 130)

  const notVM = path.join(work, 'photos')
  fs.mkdirSync(notVM)
  fs.writeFileSync(path.join(notVM, 'cat.jpg'), 'meow')
  const refused = await cli(['exec', path.join(EXAMPLES, 'counter.js'), '--port', '0', '--dir', notVM])
  assert.equal(refused.code, 2)
  assert.match(refused.stderr, /photos exists and is not a VM directory \(no meta\.json\)/)
  assert.deepEqual(fs.readdirSync(notVM), ['cat.jpg'])
})

test('a reply timeout mentions --timeout and that the call may have run (it did, and was logged)', async (t) => {
  const work = tmpdir(t)
  const script = path.join(work, 'slow.js')
  fs.writeFileSync(script, 'exports.slow = () => new Promise((resolve) => setTimeout(() => resolve("done"), 1500))\n')
  const dir = path.join(work, 'slow.libvms')
  const host = await serve(t, ['exec', script, '--port', '0', '--dir', dir])
  const r = await cli(['call', host.url, 'slow', '--timeout', '100'])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /slow got no reply within 100 ms\. The call may still have run \(and been logged\).*--timeout MS/)
  // Calls run one at a time: this one waits for `slow`, so the log holds it once this returns.
  assert.equal((await cli(['call', host.url, 'slow', '--timeout', '10000'])).stdout, '"done"\n')
  assert.equal((await host.stop()).code, 130)
  assert.match((await cli(['log', dir])).stdout, /#1 call {2}slow\(\) by "" -> "done"/)
})

test('REPL: top-level await, Ctrl+D is quiet, piped input ending in .exit waits for its calls', async (t) => {
  const host = await serve(t, ['exec', path.join(EXAMPLES, 'counter.js'), '--port', '0', '--dir', path.join(tmpdir(t), 'c.libvms')])
  const piped = await cli(['repl', host.url], { input: 'inc()\nawait inc()\nconst x = await inc(); x\ninc()\n.exit\n' })
  assert.equal(piped.code, 0, piped.stderr)
  assert.equal(piped.stderr, '')
  assert.match(piped.stdout, /> 1\n> 2\n> undefined\n> 4\n> $/)
  assert.equal((await cli(['call', host.url, 'get'])).stdout, '4\n')

  const ctrlD = await cli(['repl', host.url], { input: '' }) // end of input is what Ctrl+D sends
  assert.equal(ctrlD.code, 0)
  assert.equal(ctrlD.stderr, '')

  const once = await cli(['repl', host.url, '--exec', 'await inc()'])
  assert.equal(once.stdout, '5\n')
  assert.equal((await host.stop()).code, 130)
})

test('call arguments: JSON typos are refused, plain words are strings with a note, --string, -5 is a number', async (t) => {
  const work = tmpdir(t)
  const script = path.join(work, 'echo.js')
  fs.writeFileSync(script, 'exports.echo = (...args) => args\n')
  const dir = path.join(work, 'echo.libvms')
  const host = await serve(t, ['exec', script, '--port', '0', '--dir', dir])
  // Each typo is refused by the same function the command runs; one goes through the command itself.
  const { parseArg } = require('../lib/cli/call')
  const opts = { asString: false, note: () => assert.fail('no note for a typo') }
  for (const typo of ['{"a": 1', '{a:1}', '007', '[1,]', '"open', '1e', 'true false']) {
    assert.throws(() => parseArg(typo, 0, opts), /argument 1 is not valid JSON: .*--string/, typo)
  }
  const r = await cli(['call', host.url, 'echo', '1', '{a:1}'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^libvms: argument 2 is not valid JSON: \{a:1\} .*--string/)
  const neg = await cli(['call', host.url, 'echo', '-5', '-0.5', '3'])
  assert.equal(neg.code, 0, neg.stderr)
  assert.equal(neg.stdout, '[-5,-0.5,3]\n')
  const word = await cli(['call', host.url, 'echo', 'alice', '{"a":1}'])
  assert.equal(word.stdout, '["alice",{"a":1}]\n')
  assert.match(word.stderr, /note: argument 1 is not JSON; sending it as the string "alice"/)
  const strings = await cli(['call', host.url, 'echo', '--string', '007', '{a:1}', '-5'])
  assert.equal(strings.stdout, '["007","{a:1}","-5"]\n')
  assert.equal(strings.stderr, '')
  assert.equal((await host.stop()).code, 130)
  // The refused calls never reached the VM: only the three that ran are logged.
  const logged = (await cli(['log', dir])).stdout.trim().split('\n')
  assert.equal(logged.length, 4)
})

test('libvms log DIR | head ends quietly', async () => {
  const child = spawn(process.execPath, [BIN, 'log', big], { env: ENV })
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += d })
  child.stdout.once('data', () => child.stdout.destroy()) // the reader goes away, as head does
  const code = await new Promise((resolve) => child.on('exit', resolve))
  assert.equal(code, 0, stderr)
  assert.equal(stderr, '')
})

test('README quick start verifies the directory exec creates; .gitignore keeps VM directories out', async (t) => {
  const work = tmpdir(t)
  const host = await serve(t, ['exec', path.join(EXAMPLES, 'counter.js'), '--port', '0'], { cwd: work })
  assert.equal((await host.stop()).code, 130)
  const made = fs.readdirSync(work)
  assert.deepEqual(made, ['counter.libvms'])
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const quick = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('\n## ', readme.indexOf('## Quick start') + 1))
  const verifyPath = /libvms verify (\S+?)`/.exec(quick)[1]
  assert.equal(path.normalize(verifyPath), made[0])
  assert.equal((await cli(['verify', verifyPath], { cwd: work })).code, 0)
  assert.doesNotMatch(readme, /coming with the VM work/)
  assert.match(fs.readFileSync(path.join(ROOT, '.gitignore'), 'utf8'), /^\*\.libvms\/$/m)
})
