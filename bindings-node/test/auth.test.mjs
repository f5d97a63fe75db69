// Private channels from Node: the auth matrix (no token, bad signature,
// expired, wrong channel, right channel) from the header, a cookie and the
// query, with tokens signed by the npm jsonwebtoken package; RS256 from a
// PEM file and ES256 from a JWKS; the settings' errors.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import jwt from 'jsonwebtoken'
import tidings from '../index.js'
import { eventually, ROOT, sse } from './helpers.mjs'

const { Server, HTTPError } = tidings
const SECRET = 'a secret only the Node token tests know'
const FIXTURES = path.join(ROOT, 'core', 'tests', 'fixtures', 'jwt')

const token = (channels, { expiresIn = 60, key = SECRET, algorithm = 'HS256', keyid } = {}) =>
  jwt.sign({ sub: 'tester', tidings: { subscribe: channels } }, key, { algorithm, expiresIn, ...(keyid ? { keyid } : {}) })

/** The URL and headers that carry `value` the way `how` says. */
function carried (url, how, value) {
  if (value === undefined) return { url, headers: {} }
  if (how === 'header') return { url, headers: { authorization: `Bearer ${value}` } }
  if (how === 'cookie') return { url, headers: { cookie: `theme=dark; tidings_token=${value}` } }
  return { url: `${url}?access_token=${encodeURIComponent(value)}`, headers: {} }
}

for (const how of ['header', 'cookie', 'query']) {
  test(`the auth matrix, token in the ${how}`, async () => {
    const server = new Server({ port: 0, jwt: { secret: SECRET } })
    const channel = server.channel('/private/news', { private: true })
    await server.start()
    try {
      const url = `${server.url}/private/news`
      const cases = [
        [undefined, 401, 'Bearer realm="tidings"'],
        [token(['*'], { key: 'not the secret, though just as long as it' }), 401, 'bad signature'],
        [token(['/private/news'], { expiresIn: -120 }), 401, 'expired'],
        [token(['/private/other']), 403, 'insufficient_scope']
      ]
      for (const [value, status, challenge] of cases) {
        const request = carried(url, how, value)
        const response = await fetch(request.url, { headers: request.headers })
        assert.equal(response.status, status, `${value}`)
        assert.ok(response.headers.get('www-authenticate').includes(challenge), challenge)
        await response.body?.cancel()
      }
      const request = carried(url, how, token(['/private/*']))
      const reading = sse(request.url, { headers: request.headers, limit: 1 })
      await eventually('the member', () => channel.subscribers === 1)
      channel.publish('for members')
      const { response, events } = await reading
      assert.equal(response.status, 200)
      assert.deepEqual(events.map((e) => e.data), ['for members'])
    } finally {
      await server.stop()
    }
  })
}

test('RS256 from a PEM file and ES256 from a JWKS by key id', async () => {
  const rsa = new Server({ port: 0, jwt: { keyFile: path.join(FIXTURES, 'rsa-public.pem'), algorithm: 'RS256' } })
  rsa.channel('/private/news', { private: true })
  const es = new Server({ port: 0, jwt: { jwksFile: path.join(FIXTURES, 'jwks.json'), algorithm: 'ES256' } })
  es.channel('/private/news', { private: true })
  await rsa.start()
  await es.start()
  try {
    const rsaKey = fs.readFileSync(path.join(FIXTURES, 'rsa-private.pem'))
    const ecKey = fs.readFileSync(path.join(FIXTURES, 'ec-private.pem'))
    const status = async (server, value) => {
      const response = await fetch(`${server.url}/private/news?access_token=${value}`)
      await response.body?.cancel()
      return response.status
    }
    assert.equal(await status(rsa, token(['/private/news'], { key: rsaKey, algorithm: 'RS256' })), 200)
    assert.equal(await status(rsa, token(['/private/news'], { key: ecKey, algorithm: 'ES256' })), 401)
    assert.equal(await status(es, token(['/private/news'], { key: ecKey, algorithm: 'ES256', keyid: 'ec-1' })), 200)
    assert.equal(await status(es, token(['/private/news'], { key: ecKey, algorithm: 'ES256', keyid: 'other' })), 401)
  } finally {
    await rsa.stop()
    await es.stop()
  }
})

test('a cookie of null reads none, and bad settings are config errors', async () => {
  const server = new Server({ port: 0, jwt: { secret: Buffer.from(SECRET), cookie: null } })
  server.channel('/private/news', { private: true })
  await server.start()
  try {
    const response = await fetch(`${server.url}/private/news`, {
      headers: { cookie: `tidings_token=${token(['/private/news'])}` }
    })
    assert.equal(response.status, 401, 'the cookie is not read')
    await response.body?.cancel()
  } finally {
    await server.stop()
  }
  const invalid = { code: 'ERR_TIDINGS_INVALID_CONFIG' }
  assert.throws(() => new Server({ jwt: {} }), { ...invalid, message: /secret, a keyFile or a jwksFile/ })
  assert.throws(() => new Server({ jwt: { secret: 'short' } }), { ...invalid, message: /at least 32 bytes/ })
  assert.throws(() => new Server({ jwt: { secret: SECRET, algorithm: 'HS1' } }), { ...invalid, message: /unknown algorithm/ })
  assert.throws(() => new Server({ jwt: { secret: SECRET, keyFile: 'x.pem' } }), { ...invalid, message: /one key/ })
  assert.throws(() => new Server().channel('/p', { private: true }), { ...invalid, message: /no JWT key/ })
})

test('an authorize check lets in, answers 403, or the status of the HTTPError it throws', async () => {
  const server = new Server({ port: 0, metricsPath: '/metrics' })
  const room = server.channel('/room')
  const asked = []
  room.authorize(async (request) => {
    const user = request.query.user
    asked.push(user)
    if (user === 'eve') throw new HTTPError(402, 'pay first')
    if (user === 'mallory') throw new Error('a bug in the check')
    if (user === 'ada') return undefined
    return user === 'bob'
  })
  const failures = []
  server.on('error', (error) => failures.push(error.message))
  await server.start()
  try {
    const status = async (user) => {
      const response = await fetch(`${server.url}/room?user=${user}`)
      const body = await response.text()
      return [response.status, body]
    }
    assert.deepEqual(await status('eve'), [402, 'pay first\n'])
    assert.equal((await status('mallory'))[0], 500)
    assert.deepEqual(failures, ['a bug in the check'])
    assert.equal((await status('carol'))[0], 403)
    for (const user of ['ada', 'bob']) {
      const reading = sse(`${server.url}/room?user=${user}`, { limit: 1 })
      await eventually(`${user} in`, () => room.subscribers === 1)
      room.publish(`hello ${user}`)
      const { events } = await reading
      assert.deepEqual(events.map((e) => e.data), [`hello ${user}`])
      await eventually(`${user} out`, () => room.subscribers === 0)
    }
    assert.deepEqual(asked.sort(), ['ada', 'bob', 'carol', 'eve', 'mallory'])
    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    assert.match(metrics, /tidings_subscriptions_refused_total\{reason="denied"\} 3/)
  } finally {
    await server.stop()
  }
})
