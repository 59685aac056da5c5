'use strict'
// Drive the `libvms` command as a user would: spawned processes, real directories, OS-chosen ports.
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')

const BIN = path.join(__dirname, '..', 'bin', 'libvms.js')
const ENV = { ...process.env, DEBUG: '' }

/** Run `libvms ...args` to completion: {code, signal, stdout, stderr}. `input` is written to stdin, then closed. */
function cli (args, { env = ENV, cwd, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
    child.stdin.end(input)
  })
}

/** Start `libvms exec|factory ...`; resolves once it serves, with its URL. Killed after the test `t` if still up. */
async function serve (t, args, { env = ENV, cwd } = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { env, cwd })
  let stdout = ''
  let stderr = ''
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  child.stdout.on('data', (d) => { stdout += d })
  child.stderr.on('data', (d) => { stderr += d })
  await new Promise((resolve, reject) => {
    // Only so that a hung start fails the test instead of hanging it (generous: CI machines can be busy).
    const timer = setTimeout(() => reject(new Error(`not serving after 60 s:\n${stdout}\n${stderr}`)), 60000)
    child.stdout.on('data', () => { if (stdout.includes('Ctrl+C')) { clearTimeout(timer); resolve() } })
    exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`exited with ${code} before serving:\n${stdout}\n${stderr}`)) })
  })
  const port = Number(/ws:\/\/127\.0\.0\.1:(\d+)\//.exec(stdout)[1])
  assert.ok(port > 0)
  return {
    port,
    url: `ws://127.0.0.1:${port}/`,
    stdout: () => stdout,
    stderr: () => stderr,
    /** Send `signal` and wait for the exit: {code, stdout, stderr}. */
    async stop (signal = 'SIGINT') {
      child.kill(signal)
      const { code } = await exited
      return { code, stdout, stderr }
    }
  }
}

module.exports = { cli, serve, BIN, ENV }
