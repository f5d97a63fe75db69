import assert from 'node:assert/strict'
import { test } from 'node:test'
import tidings from '../index.js'
import { sse, eventually } from './helpers.mjs'

const { Server } = tidings

test('publish sends strings, Buffers and JSON exactly as subscribers receive them', async () => {
  const server = new Server({ port: 0 })
  const channel = server.channel('/c', { autoId: false })
  await server.start()
  const reading = sse(`${server.url}/c`, { limit: 4 })
  await eventually('subscribed', () => channel.subscribers === 1)
  assert.equal(channel.publish('text'), null)
  assert.equal(channel.publish({ home: 1, é: '✓' }, { event: 'goal', id: 'g1', retry: 3000 }), 'g1')
  assert.equal(channel.publish(Buffer.from('bytes')), null)
  channel.publish('two\nlines')
  const { response, events, retries } = await reading
  assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8')
  assert.equal(response.headers.get('cache-control'), 'no-cache')
  assert.deepEqual(events, [
    { event: 'message', id: '', data: 'text' },
    { event: 'goal', id: 'g1', data: '{"home":1,"é":"✓"}' },
    { event: 'message', id: '', data: 'bytes' },
    { event: 'message', id: '', data: 'two\nlines' }
  ])
  assert.deepEqual(retries, [3000])
  await server.stop()
})

test('automatic ids increase', async () => {
  const server = new Server({ port: 0 })
  const channel = server.channel('/c')
  const [a, b] = [channel.publish('a'), channel.publish('b')]
  assert.match(a, /-1$/)
  assert.match(b, /-2$/)
  await server.stop()
})

test('invalid events are rejected with a code naming the field; nothing is sent', async () => {
  const server = new Server({ port: 0 })
  const channel = server.channel('/c')
  assert.throws(() => channel.publish('x', { event: 'bad\nname' }), { code: 'ERR_TIDINGS_INVALID_EVENT', message: /`event`/ })
  assert.throws(() => channel.publish('x', { id: 'a\rb' }), { code: 'ERR_TIDINGS_INVALID_EVENT', message: /`id`/ })
  assert.throws(() => channel.publish(Buffer.from([0xff, 0xfe])), { code: 'ERR_TIDINGS_INVALID_EVENT', message: /UTF-8/ })
  assert.throws(() => channel.publish(42), TypeError)
  assert.throws(() => channel.publish('x', { retry: -1 }), TypeError)
  assert.throws(() => channel.publish('x', { event: 5 }), TypeError)
  assert.equal(channel.eventsPublished, 0)
  await server.stop()
})
