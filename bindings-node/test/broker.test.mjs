import assert from 'node:assert/strict'
import { test } from 'node:test'
import tidings from '../index.js'
import { sse, eventually, redisServer, freePort } from './helpers.mjs'

const { Server } = tidings

test('servers on one broker deliver every publish to every subscriber in one order', async () => {
  const redis = await redisServer()
  const servers = [new Server({ port: 0, broker: redis.url }), new Server({ port: 0, broker: redis.url })]
  const channels = servers.map((server) => server.channel('/c'))
  try {
    for (const server of servers) await server.start()
    const readings = servers.map((server) => sse(`${server.url}/c`, { limit: 40 }))
    await eventually('subscribed', () => channels.every((channel) => channel.subscribers === 1))
    for (let i = 0; i < 20; i++) {
      channels[0].publish(`a${i}`)
      channels[1].publish(`b${i}`)
    }
    const [first, second] = await Promise.all(readings)
    assert.equal(first.events.length, 40)
    assert.deepEqual(second.events, first.events, 'one order for all')
    assert.deepEqual(first.events.filter((e) => e.data.startsWith('b')).map((e) => e.data),
      Array.from({ length: 20 }, (_, i) => `b${i}`))
    // The ids are the broker's, so the other server resumes from one.
    const last = first.events[29].id
    const resumed = await sse(`${servers[1].url}/c`, { headers: { 'last-event-id': last }, limit: 10 })
    assert.deepEqual(resumed.events, first.events.slice(30))
    const id = await channels[1].publishConfirmed('confirmed', { timeout: 10 })
    assert.match(id, /^\d+-\d+$/)
    const broker = servers[0].stats().broker
    assert.equal(broker.url, redis.url)
    assert.equal(broker.connected, true)
    assert.equal(broker.sent, 20)
    assert.equal(broker.lastError, null)
    // Presence counts every server's subscribers (reported every 2 s).
    const stay = sse(`${servers[1].url}/c`, { limit: 1 })
    await eventually('a cluster-wide count', () => servers[0].stats().channels['/c'].clusterSubscribers === 1)
    assert.equal(servers[0].stats().channels['/c'].subscribers, 0)
    channels[1].publish('bye')
    await stay
  } finally {
    for (const server of servers) await server.stop()
    await redis.stop()
  }
})

test('an unreachable broker shows in stats and a full queue refuses with a code', async () => {
  const server = new Server({ port: 0, broker: `redis://127.0.0.1:${await freePort()}/0`, brokerQueue: 2, drainTimeout: 0.2 })
  const channel = server.channel('/c')
  await server.start()
  try {
    const waiting = channel.publishConfirmed('waits', { timeout: 0.1 })
    await assert.rejects(waiting, (error) => error.code === 'ERR_TIDINGS_TIMED_OUT' && /may still be delivered/.test(error.message))
    assert.throws(() => { for (let i = 0; i < 1000; i++) channel.publish(String(i)) },
      (error) => error.code === 'ERR_TIDINGS_BROKER_UNAVAILABLE' && /unreachable/.test(error.message))
    await eventually('the fault in stats', () => server.stats().broker.faults > 0)
    const broker = server.stats().broker
    assert.equal(broker.connected, false)
    assert.ok(broker.lastError)
  } finally {
    await server.stop()
  }
  assert.throws(() => new Server({ broker: 'http://127.0.0.1:6379' }), (error) => error.code === 'ERR_TIDINGS_INVALID_CONFIG')
})

test("a TLS broker's CA file is read when the server is made", () => {
  const invalid = (fragment) => (error) => error.code === 'ERR_TIDINGS_INVALID_CONFIG' && error.message.includes(fragment)
  assert.throws(() => new Server({ broker: 'rediss://127.0.0.1:1/0', brokerCa: '/nonexistent/tidings-ca.pem' }),
    invalid('tidings-ca.pem'))
  assert.throws(() => new Server({ broker: 'redis://127.0.0.1:1/0', brokerCa: '/nonexistent/tidings-ca.pem' }),
    invalid('rediss://'))
})
