import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import tidings from '../index.js'
import { PATIENCE, ROOT, sse, eventually, sleep } from './helpers.mjs'

const { Server } = tidings

test('misuse gets clear errors with codes', async () => {
  const server = new Server({ port: 0 })
  const channel = server.channel('/c')
  assert.throws(() => server.channel('/c'), { code: 'ERR_TIDINGS_ROUTE_EXISTS' })
  assert.throws(() => server.channel('nope'), { code: 'ERR_TIDINGS_INVALID_PATH' })
  assert.throws(() => server.channel(5), TypeError)
  assert.throws(() => server.stream('/s', 'not a function'), TypeError)
  assert.throws(() => server.page('/', '/no/such/file.html'), { code: 'ERR_TIDINGS_FILE', message: /no\/such\/file/ })
  assert.throws(() => new Server({ limits: { maxHeadBytes: 10 } }), { code: 'ERR_TIDINGS_INVALID_CONFIG' })
  assert.throws(() => new Server({ keepalive: -1 }), { code: 'ERR_TIDINGS_INVALID_CONFIG', message: /keepalive/ })
  assert.throws(() => new Server({ keepalive: 'soon' }), TypeError)
  const port = await server.start()
  await assert.rejects(server.start(), { code: 'ERR_TIDINGS_ALREADY_RUNNING' })
  const other = new Server({ port })
  await assert.rejects(other.start(), { code: 'ERR_TIDINGS_BIND', message: new RegExp(`127\\.0\\.0\\.1:${port}`) })
  await server.stop()
  await server.stop()
  assert.throws(() => channel.publish('late'), { code: 'ERR_TIDINGS_STOPPED' })
  await assert.rejects(server.start(), { code: 'ERR_TIDINGS_STOPPED' })
})

test('servers that offer to share a port (reusePort) both listen on it; one that does not cannot', async () => {
  const first = new Server({ port: 0, reusePort: true })
  const port = await first.start()
  const second = new Server({ port, reusePort: true })
  assert.equal(await second.start(), port)
  await assert.rejects(new Server({ port }).start(), { code: 'ERR_TIDINGS_BIND' })
  await first.stop()
  await second.stop()
})

test('durations are checked by the engine, not wrapped at 49.7 days', async () => {
  const day = 24 * 3600
  for (const [options, name] of [
    [{ writeTimeout: 400 * day }, /writeTimeout/],
    [{ drainTimeout: Number.NaN }, /drainTimeout/],
    [{ limits: { headTimeout: 1e19 } }, /headTimeout/],
    [{ tcpKeepalive: Infinity }, /tcpKeepalive/]
  ]) {
    assert.throws(() => new Server(options), { code: 'ERR_TIDINGS_INVALID_CONFIG', message: name })
  }
  // 50 days is a duration like any other (it used to wrap to ~0.3 days).
  const server = new Server({ port: 0, drainTimeout: 50 * day, writeTimeout: 60 * day })
  assert.throws(() => server.channel('/c', { keepalive: 400 * day }), { code: 'ERR_TIDINGS_INVALID_CONFIG' })
  await server.stop()
})

test('a channel keepalive of 0 or null turns keep-alives off; absent, the server\'s apply', async () => {
  const server = new Server({ port: 0, keepalive: 0.05 })
  const off = server.channel('/off', { keepalive: 0, autoId: false })
  const alsoOff = server.channel('/null', { keepalive: null, autoId: false })
  server.channel('/inherit', { autoId: false })
  const port = await server.start()
  const read = async (path, untilText, publish) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`)
    let text = ''
    socket.on('data', (chunk) => { text += chunk })
    await sleep(300)
    if (publish) publish()
    await eventually(`${untilText} on ${path}`, () => text.includes(untilText))
    socket.destroy()
    return text.slice(text.indexOf('\r\n\r\n') + 4)
  }
  assert.ok((await read('/inherit', ':\n\n:\n\n')).startsWith(':\n\n'))
  for (const [path, channel] of [['/off', off], ['/null', alsoOff]]) {
    const body = await read(path, 'data: first', () => channel.publish('first'))
    assert.equal(body, 'data: first\n\n')
  }
  await server.stop()
})

test('stop sends the farewell after what was queued', async () => {
  const server = new Server({ port: 0 })
  const channel = server.channel('/c')
  await server.start()
  const reading = sse(`${server.url}/c`)
  await eventually('subscribed', () => channel.subscribers === 1)
  channel.publish('last news')
  await server.stop({ event: 'shutdown', data: 'bye' })
  const { events } = await reading
  assert.deepEqual(events.map((e) => [e.event, e.data]), [['message', 'last news'], ['shutdown', 'bye']])
})

test('routes, pages, files, CORS, presence and stats', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidings-node-'))
  fs.writeFileSync(path.join(dir, 'index.html'), '<h1>hi</h1>')
  const server = new Server({ port: 0, cors: '*' })
  server.page('/', path.join(dir, 'index.html'))
  server.files('/static', dir)
  server.route('/hello', async (request) => ({ body: JSON.stringify({ name: request.query.name }), contentType: 'application/json' }))
  server.route('/teapot', () => { throw new tidings.HTTPError(418, 'short and stout') })
  server.route('/broken', () => { throw new Error('a bug in the route') })
  const channel = server.channel('/c')
  const joined = []
  const left = []
  channel.onSubscribe((request) => joined.push(request.query.who))
  channel.onUnsubscribe((request) => left.push(request.query.who))
  await server.start()
  assert.equal(await (await fetch(`${server.url}/`)).text(), '<h1>hi</h1>')
  assert.equal((await fetch(`${server.url}/static/index.html`)).status, 200)
  const hello = await fetch(`${server.url}/hello?name=ada`)
  assert.deepEqual(await hello.json(), { name: 'ada' })
  assert.equal(hello.headers.get('access-control-allow-origin'), '*')
  const teapot = await fetch(`${server.url}/teapot`)
  assert.deepEqual([teapot.status, await teapot.text()], [418, 'short and stout\n'])
  const reported = []
  server.on('error', (error) => reported.push(error.message))
  const broken = await fetch(`${server.url}/broken`)
  assert.deepEqual([broken.status, await broken.text()], [500, 'route handler failed\n'])
  assert.deepEqual(reported, ['a bug in the route'])
  const reading = sse(`${server.url}/c?who=ada`, { limit: 1 })
  await eventually('subscribed', () => channel.subscribers === 1)
  channel.publish('x')
  await reading
  await eventually('presence hooks', () => joined.length === 1 && left.length === 1)
  assert.deepEqual([joined, left], [['ada'], ['ada']])
  const stats = server.stats()
  assert.equal(stats.eventsPublished, 1)
  assert.equal(stats.channels['/c'].historyLength, 1)
  await server.stop()
  fs.rmSync(dir, { recursive: true })
})

test('the process exits on its own after stop()', async () => {
  const script = `
    const { Server } = require(${JSON.stringify(path.join(ROOT, 'bindings-node'))})
    const server = new Server({ port: 0 })
    server.channel('/c')
    server.stream('/s', async function * () { yield 'x' })
    server.start().then(async () => {
      const response = await fetch(server.url + '/s')
      await response.text()
      await server.stop()
      console.log('stopped')
    })`
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (chunk) => { out += chunk })
  const code = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('the process did not exit after stop()')) }, PATIENCE)
    child.on('exit', (exitCode) => { clearTimeout(timer); resolve(exitCode) })
  })
  assert.equal(code, 0)
  assert.equal(out.trim(), 'stopped')
})
