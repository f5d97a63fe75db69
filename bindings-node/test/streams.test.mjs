import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'
import tidings from '../index.js'
import { sse, eventually, sleep } from './helpers.mjs'

const { Server, HTTPError } = tidings

test('async generators, sync iterables and functions returning them', async () => {
  const server = new Server({ port: 0 })
  server.stream('/async', async function * (request) {
    yield { event: 'hello', id: '1', data: { who: request.query.name } }
    yield 'plain'
  })
  server.stream('/sync', () => ['one', Buffer.from('two')])
  server.stream('/promised', async (request) => ['after an await'])
  await server.start()
  assert.deepEqual((await sse(`${server.url}/async?name=ada`)).events, [
    { event: 'hello', id: '1', data: '{"who":"ada"}' },
    { event: 'message', id: '', data: 'plain' }
  ])
  assert.deepEqual((await sse(`${server.url}/sync`)).events.map((e) => e.data), ['one', 'two'])
  assert.deepEqual((await sse(`${server.url}/promised`)).events.map((e) => e.data), ['after an await'])
  await server.stop()
})

test('the request reaches the handler', async () => {
  const server = new Server({ port: 0 })
  let seen
  server.stream('/s', (request) => {
    seen = request
    return []
  })
  await server.start()
  await sse(`${server.url}/s?a=1&b=x+y`, { headers: { 'last-event-id': '41', 'x-test': 'yes' } })
  assert.equal(seen.path, '/s')
  assert.deepEqual(seen.query, { a: '1', b: 'x y' })
  assert.equal(seen.lastEventId, '41')
  assert.equal(seen.headers['x-test'], 'yes')
  assert.equal(seen.client.address, '127.0.0.1')
  await server.stop()
})

test('HTTPError before the first item answers that status; other failures 500', async () => {
  const server = new Server({ port: 0 })
  const reported = []
  server.on('error', (error, request) => reported.push([error.message, request.path]))
  server.stream('/p', (request) => {
    if (!/^\d+$/.test(request.query.session_id ?? '')) throw new HTTPError(400, 'session_id must be an integer')
    return ['ok']
  })
  server.stream('/broken', () => { throw new Error('handler bug') })
  server.stream('/wrong', () => 42)
  await server.start()
  const refused = await fetch(`${server.url}/p?session_id=x`)
  assert.equal(refused.status, 400)
  assert.equal(await refused.text(), 'session_id must be an integer\n')
  assert.equal((await fetch(`${server.url}/broken`)).status, 500)
  assert.equal((await fetch(`${server.url}/wrong`)).status, 500)
  assert.deepEqual(reported.map(([, path]) => path), ['/broken', '/wrong'])
  await server.stop()
})

test('a throwing producer ends with event: error, is reported, and the server goes on', async () => {
  const server = new Server({ port: 0 })
  const reported = []
  server.on('error', (error) => reported.push(error.message))
  server.stream('/fails', async function * () {
    yield 'before'
    throw new Error('secret detail')
  })
  server.stream('/bad-item', async function * () {
    yield 'fine'
    yield 3.14
  })
  await server.start()
  const { events } = await sse(`${server.url}/fails`)
  assert.deepEqual(events, [{ event: 'message', id: '', data: 'before' }, { event: 'error', id: '', data: 'stream failed' }])
  assert.deepEqual((await sse(`${server.url}/bad-item`)).events.map((e) => e.event), ['message', 'error'])
  assert.ok(reported.includes('secret detail'))
  assert.equal((await sse(`${server.url}/fails`)).events.length, 2)
  await server.stop()
})

test('clients that leave get their generator returned (finally runs)', async () => {
  const server = new Server({ port: 0 })
  let started = 0
  let finished = 0
  server.stream('/forever', async function * () {
    started++
    try {
      for (;;) {
        yield 'tick'
        await sleep(5)
      }
    } finally {
      finished++
    }
  })
  await server.start()
  const sockets = []
  for (let i = 0; i < 50; i++) {
    const socket = net.connect(server.port, '127.0.0.1')
    socket.write('GET /forever HTTP/1.1\r\nhost: x\r\n\r\n')
    socket.on('error', () => {})
    sockets.push(socket)
  }
  await eventually('all started', () => started === 50)
  const left = Date.now()
  for (const socket of sockets) socket.destroy()
  await eventually('every finally ran', () => finished === 50)
  assert.ok(Date.now() - left < 1000, 'a generator outlived its client by more than a second')
  await eventually('streams released', () => server.stats().streamsOpen === 0)
  await server.stop()
})

test('a slow reader makes its producer wait and loses nothing', async () => {
  const server = new Server({ port: 0, streamQueue: 2 })
  server.stream('/burst', async function * () {
    for (let n = 0; n < 3000; n++) yield String(n)
  })
  await server.start()
  const { events } = await sse(`${server.url}/burst`)
  assert.deepEqual(events.map((e) => Number(e.data)), Array.from({ length: 3000 }, (_, n) => n))
  await server.stop()
})
