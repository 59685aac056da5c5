'use strict'
// SerialQueue: jobs one at a time in order; `room(n)` lets a producer (a replay) keep between n and 2n jobs queued.
const test = require('node:test')
const assert = require('node:assert/strict')
const SerialQueue = require('../lib/serial-queue')

test('room(n) is null while at most n jobs are pending, else resolves once n are left; jobs keep their order', async () => {
  const q = new SerialQueue()
  const order = []
  const gates = []
  for (let i = 0; i < 5; i++) {
    q.push(() => new Promise((resolve) => gates.push(() => { order.push(i); resolve() })))
  }
  assert.equal(q.pending, 5)
  assert.equal(q.room(5), null)
  let roomFor3 = false
  let roomFor1 = false
  q.room(3).then(() => { roomFor3 = true })
  q.room(1).then(() => { roomFor1 = true })
  const open = async () => { while (gates.length === 0) await new Promise(setImmediate); gates.shift()(); await new Promise(setImmediate) }
  await open()
  assert.equal(q.pending, 4)
  assert.equal(roomFor3, false)
  await open()
  assert.equal(q.pending, 3)
  assert.equal(roomFor3, true)
  assert.equal(roomFor1, false)
  await open()
  await open()
  assert.equal(roomFor1, true)
  await open()
  await q.drain()
  assert.deepEqual(order, [0, 1, 2, 3, 4])
  assert.equal(q.pending, 0)
})
