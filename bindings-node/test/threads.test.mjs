// The engine's threads and the one JS thread: what engine threads hand to
// JS (stream openings, presence hooks) waits, queued, while the JS thread is
// busy, and runs once it is free; no client is lost and none waits on another.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Worker } from 'node:worker_threads'
import tidings from '../index.js'
import { eventually } from './helpers.mjs'

const { Server } = tidings

const CLIENTS = 40
const ITEMS = 10

// Runs on a worker thread, so the clients go on while the JS thread of the
// server is blocked: CLIENTS stream readers and CLIENTS channel subscribers.
const CLIENT_CODE = `
const { parentPort, workerData } = require('node:worker_threads')
const { port, clients, items } = workerData
async function read (path, until) {
  const response = await fetch('http://127.0.0.1:' + port + path)
  const decoder = new TextDecoder()
  let text = ''
  for await (const chunk of response.body) {
    text += decoder.decode(chunk, { stream: true })
    if (until(text)) break
  }
  return text.split('\\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6))
}
const streams = Array.from({ length: clients }, () => read('/s', (text) => text.includes('data: ' + (items - 1) + '\\n')))
const channels = Array.from({ length: clients }, () => read('/c', (text) => text.includes('data: after\\n')))
parentPort.postMessage('connecting')
Promise.all([Promise.all(streams), Promise.all(channels)]).then(
  ([streamed, broadcast]) => parentPort.postMessage({ streamed, broadcast }),
  (error) => parentPort.postMessage({ error: String(error) })
)
`

test('callbacks from engine threads wait while the JS thread is busy, then all run: no client is lost', async () => {
  const server = new Server({ port: 0 })
  const channel = server.channel('/c')
  let joined = 0
  channel.onSubscribe(() => { joined++ })
  let opened = 0
  server.stream('/s', async function * () {
    opened++
    for (let n = 0; n < ITEMS; n++) yield String(n)
  })
  const port = await server.start()
  try {
    const worker = new Worker(CLIENT_CODE, { eval: true, workerData: { port, clients: CLIENTS, items: ITEMS } })
    const messages = []
    const done = new Promise((resolve, reject) => {
      worker.on('message', (message) => {
        messages.push(message)
        if (message !== 'connecting') resolve(message)
      })
      worker.on('error', reject)
    })
    await eventually('the worker connecting', () => messages.includes('connecting'))
    // Busy for 300 ms: the clients connect meanwhile, and the engine queues
    // their openings and presence hooks instead of waiting for this thread.
    const until = Date.now() + 300
    while (Date.now() < until) { /* the JS thread is busy */ }
    await eventually('every opening and hook run', () => joined === CLIENTS && opened === CLIENTS)
    channel.publish('after')
    const result = await done
    await worker.terminate()
    assert.equal(result.error, undefined)
    const expected = Array.from({ length: ITEMS }, (_, n) => String(n))
    for (const items of result.streamed) assert.deepEqual(items, expected)
    for (const items of result.broadcast) assert.deepEqual(items, ['after'])
  } finally {
    await server.stop()
  }
})
