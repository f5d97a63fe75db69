// The Mercure hub from Node: the npm `eventsource` client (which reconnects
// and resumes with Last-Event-ID, as browsers do) subscribed by topic
// selectors, publishers posting forms with tokens signed by the npm
// jsonwebtoken package, a channel of the server as a topic, and a resume
// after the test's own proxy cut the client's connection.
import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'
import { EventSource } from 'eventsource'
import jwt from 'jsonwebtoken'
import tidings from '../index.js'
import { eventually, PATIENCE } from './helpers.mjs'

const { Server } = tidings
const PUBLISHER_KEY = 'the Node hub tests publishers key, 32+ bytes'
const SUBSCRIBER_KEY = 'the Node hub tests subscribers key, 32+ bytes'
const HUB = '/.well-known/mercure'

const publisherToken = () => jwt.sign({ mercure: { publish: ['*'] } }, PUBLISHER_KEY, { expiresIn: 600 })

/** POSTs an update as Mercure's publishers do; the response. */
const post = (base, fields, token = publisherToken()) =>
  fetch(`${base}${HUB}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: new URLSearchParams(fields)
  })

async function publish (base, fields) {
  const response = await post(base, fields)
  assert.equal(response.status, 200, await response.clone().text())
  return response.text()
}

const hubUrl = (base, topics) => {
  const query = new URLSearchParams(topics.map((topic) => ['topic', topic]))
  return `${base}${HUB}?${query}`
}

/** An EventSource whose messages collect in `received`; resolves once open. */
async function subscribe (url, init) {
  const source = new EventSource(url, init)
  const received = []
  const state = { source, received, opened: 0 }
  source.onmessage = (event) => received.push({ id: event.lastEventId, data: event.data })
  source.addEventListener('open', () => { state.opened += 1 })
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${url} did not open`)), PATIENCE)
    source.addEventListener('open', () => { clearTimeout(timer); resolve() }, { once: true })
  })
  return state
}

/** A TCP proxy to `target` whose open connections `cut()` resets. */
async function proxy (target) {
  const sockets = new Set()
  const listener = net.createServer((client) => {
    const upstream = net.connect(target.port, target.hostname)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
      socket.on('error', () => {})
    }
    client.pipe(upstream).pipe(client)
  })
  await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${listener.address().port}`,
    cut: () => { for (const socket of sockets) socket.resetAndDestroy() },
    close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); listener.close(resolve) })
  }
}

test('the eventsource client receives the updates its selectors select, from publishers and the host', async () => {
  const server = new Server({ port: 0, hub: { publisherKey: PUBLISHER_KEY, subscriberKey: SUBSCRIBER_KEY } })
  const scores = server.channel('/scores')
  await server.start()
  try {
    const { source, received } = await subscribe(hubUrl(server.url, ['/scores', '/books/{id}']))
    const ids = [
      await publish(server.url, [['topic', '/books/1'], ['data', 'a book']]),
      await publish(server.url, [['topic', '/authors/1'], ['data', 'not selected']])
    ]
    const hostId = scores.publish('1-0', { event: 'message' })
    await eventually('two updates', () => received.length === 2)
    assert.deepEqual(received, [{ id: ids[0], data: 'a book' }, { id: hostId, data: '1-0' }])
    source.close()

    // A private update reaches the subscriber whose token grants its topic.
    const token = jwt.sign({ mercure: { subscribe: ['/inbox/7'] } }, SUBSCRIBER_KEY, { expiresIn: 600 })
    const withToken = (input, init) => fetch(input, { ...init, headers: { ...init.headers, authorization: `Bearer ${token}` } })
    const member = await subscribe(hubUrl(server.url, ['/inbox/{n}']), { fetch: withToken })
    const anonymous = await subscribe(hubUrl(server.url, ['/inbox/{n}']))
    await publish(server.url, [['topic', '/inbox/7'], ['data', 'for 7'], ['private', 'on']])
    await publish(server.url, [['topic', '/inbox/7'], ['data', 'for all']])
    await eventually('the member has both', () => member.received.length === 2)
    await eventually('the anonymous one has one', () => anonymous.received.length === 1)
    assert.deepEqual(member.received.map((m) => m.data), ['for 7', 'for all'])
    assert.deepEqual(anonymous.received.map((m) => m.data), ['for all'])
    member.source.close()
    anonymous.source.close()

    const refused = await post(server.url, [['topic', '/x']], jwt.sign({ mercure: { publish: ['/y'] } }, PUBLISHER_KEY))
    assert.equal(refused.status, 403)
  } finally {
    await server.stop()
  }
})

test('after a cut connection the client resumes with Last-Event-ID and misses nothing', async () => {
  const server = new Server({ port: 0, hub: { publisherKey: PUBLISHER_KEY } })
  await server.start()
  const relay = await proxy(new URL(server.url))
  try {
    const subscriber = await subscribe(hubUrl(relay.url, ['/ticks']))
    const { source, received } = subscriber
    // The client's next attempt comes soon: the hub's updates carry retry.
    await publish(server.url, [['topic', '/ticks'], ['data', '0'], ['retry', '100']])
    await eventually('the first tick', () => received.length === 1)
    relay.cut()
    for (let n = 1; n <= 5; n++) await publish(server.url, [['topic', '/ticks'], ['data', String(n)]])
    await eventually('every tick', () => received.length === 6)
    assert.deepEqual(received.map((m) => m.data), ['0', '1', '2', '3', '4', '5'])
    assert.equal(subscriber.opened, 2, 'the client reconnected once')
    source.close()
  } finally {
    await relay.close()
    await server.stop()
  }
})

test('hub options are checked', () => {
  assert.throws(() => new Server({ hub: 'yes' }), /hub must be true or an object/)
  assert.throws(() => new Server({ hub: { anonymous: false } }), /anonymous/)
  assert.throws(() => new Server({ hub: { path: 'hub' } }), /path/)
  assert.throws(() => new Server({ hub: { publisherKey: 'short' } }), /at least 32 bytes/)
})
