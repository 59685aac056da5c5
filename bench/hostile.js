'use strict'
// Hostile clients against a running `libvms exec`: 2,000 connections opened at once and 100 partial 15 MiB frames
// from one address, while an honest client on another loopback address connects and calls. Reports the honest
// client's connect + call time and the host's peak RSS (from /proc), beside the idle host's RSS.
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const WebSocket = require('ws')
const { time, fmt, printTable } = require('./table')

const BIN = path.join(__dirname, '..', 'bin', 'libvms.js')
const MiB = 1 << 20

function rss (pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)[1]) * 1024
  return { now: kb('VmRSS'), peak: kb('VmHWM') }
}

function wsOpen (url, opts) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, opts)
    ws.once('open', () => resolve(ws))
    ws.once('error', () => resolve(null))
  })
}

/** A raw upgraded socket that sends the header of a `len`-byte text frame and `len - 1` bytes of it. */
function partialFrame (port, len) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' })
    s.on('error', () => resolve(s))
    s.on('close', () => resolve(s))
    s.once('connect', () => {
      s.write(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`)
      s.once('data', () => {
        const head = Buffer.alloc(14)
        head[0] = 0x81
        head[1] = 0x80 | 127
        head.writeBigUInt64BE(BigInt(len), 2)
        s.write(head)
        s.write(Buffer.alloc(len - 1, 0x20), () => resolve(s))
      })
    })
  })
}

async function main () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'libvms-bench-hostile-'))
  const script = path.join(root, 'add.js')
  fs.writeFileSync(script, 'exports.add = (a, b) => a + b\n')
  const host = spawn(process.execPath, [BIN, 'exec', script, '--port', '0', '--dir', path.join(root, 'vm')], { stdio: ['ignore', 'pipe', 'inherit'] })
  const sockets = []
  try {
    const port = await new Promise((resolve, reject) => {
      let out = ''
      host.stdout.on('data', (d) => {
        out += d
        const m = /ws:\/\/[^:]+:(\d+)\//.exec(out)
        if (m) resolve(Number(m[1]))
      })
      host.once('exit', () => reject(new Error('host exited')))
    })
    const url = `ws://127.0.0.1:${port}/`
    await new Promise((resolve) => setTimeout(resolve, 300))
    const idle = rss(host.pid).now

    // 2,000 connections at once from 127.0.0.1: the address keeps its 128, the rest are turned away.
    const opened = await Promise.all(Array.from({ length: 2000 }, () => wsOpen(url)))
    const held = opened.filter(Boolean)
    sockets.push(...held)
    // 100 partial 15 MiB frames from 127.0.0.1: the ones past the address's 32 MiB are dropped.
    const partial = await Promise.all(Array.from({ length: 100 }, () => partialFrame(port, 15 * MiB)))
    sockets.push(...partial)

    // An honest client on 127.0.0.2.
    let reply
    const secs = await time(async () => {
      const ws = await wsOpen(url, { localAddress: '127.0.0.2' })
      if (!ws) throw new Error('the honest client could not connect')
      sockets.push(ws)
      reply = await new Promise((resolve) => {
        ws.once('message', (m) => resolve(JSON.parse(m.toString())))
        ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'add', params: [1, 2], id: 1 }))
      })
    })
    if (reply.result !== 3) throw new Error('unexpected reply ' + JSON.stringify(reply))
    const mem = rss(host.pid)
    printTable('Hostile clients (`libvms exec`, one hostile address)', [
      ['2,000 connections at once from one address', `${held.length} held, ${2000 - held.length} turned away`, '<= 128 held (maxConnectionsPerAddress)'],
      ['honest client on another address, connect + call, under that load', `${fmt(secs * 1000, 1)} ms`, '< 100 ms'],
      ['host RSS: idle / peak during the attack', `${fmt(idle / MiB)} MiB / ${fmt(mem.peak / MiB)} MiB`, '< 512 MiB (budget: README, Hostile clients)']
    ])
  } finally {
    for (const s of sockets) (s.terminate || s.destroy).call(s)
    host.kill('SIGINT')
    await new Promise((resolve) => host.once('exit', resolve))
    fs.rmSync(root, { recursive: true, force: true })
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
