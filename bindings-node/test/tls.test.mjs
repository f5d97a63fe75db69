// TLS and HTTP/2 from Node: a CA made per test with the openssl CLI, Node's
// own https and http2 clients, certificate reload, and one stream of a
// multiplexed connection closed while its siblings go on.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import http2 from 'node:http2'
import https from 'node:https'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { test } from 'node:test'
import tidings from '../index.js'
import { eventually, PATIENCE } from './helpers.mjs'

const { Server } = tidings

/** A CA and a certificate for 127.0.0.1 signed by it, as PEM files in a fresh directory. */
function makePki () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidings-tls-'))
  const file = (name) => path.join(dir, name)
  const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=tidings test CA', '-keyout', file('ca.key'), '-out', file('ca.pem'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign')
  fs.writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n')
  const issue = () => {
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1',
      '-keyout', file('server.key'), '-out', file('server.csr'))
    openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'),
      '-CAcreateserial', '-days', '2', '-extfile', file('san.ext'), '-out', file('server.pem'))
  }
  issue()
  return {
    dir,
    ca: fs.readFileSync(file('ca.pem')),
    cert: file('server.pem'),
    key: file('server.key'),
    issue,
    remove: () => fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Reads `stream` until `needle` has arrived. */
function readUntil (stream, needle) {
  return new Promise((resolve, reject) => {
    let seen = ''
    const timer = setTimeout(() => reject(new Error(`${needle} not seen; got ${seen}`)), PATIENCE)
    stream.setEncoding('utf8')
    stream.on('data', function onData (chunk) {
      seen += chunk
      if (seen.includes(needle)) {
        clearTimeout(timer)
        stream.off('data', onData)
        resolve(seen)
      }
    })
    stream.on('error', reject)
  })
}

/** The serial number of the certificate a fresh handshake is given. */
function servedSerial (port, ca) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: undefined }, () => {
      resolve(socket.getPeerCertificate().serialNumber)
      socket.end()
    })
    socket.on('error', reject)
  })
}

test('https: a channel and a stream over TLS, with https in the request', async () => {
  const pki = makePki()
  const server = new Server({ port: 0, tlsCert: pki.cert, tlsKey: pki.key })
  const channel = server.channel('/c')
  server.stream('/s', async function * (request) {
    yield `${request.scheme} ${request.headers.host}`
  })
  try {
    await server.start()
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/)
    const response = await new Promise((resolve, reject) => {
      https.get(`${server.url}/c`, { ca: pki.ca }, resolve).on('error', reject)
    })
    assert.equal(response.statusCode, 200)
    await eventually('subscribed', () => channel.subscribers === 1)
    channel.publish('secret news')
    assert.match(await readUntil(response, 'secret news'), /data: secret news/)
    response.destroy()

    const stream = await new Promise((resolve, reject) => {
      https.get(`${server.url}/s`, { ca: pki.ca }, resolve).on('error', reject)
    })
    const host = server.url.replace('https://', '')
    assert.match(await readUntil(stream, host), new RegExp(`data: https ${host}`))
  } finally {
    await server.stop()
    pki.remove()
  }
})

test('http2: three EventSources on one connection; closing one ends only its subscription', async () => {
  const pki = makePki()
  const server = new Server({ port: 0, tlsCert: pki.cert, tlsKey: pki.key })
  const channel = server.channel('/c')
  const session = { close () {} }
  try {
    await server.start()
    const client = http2.connect(server.url, { ca: pki.ca })
    session.close = () => client.close()
    const streams = [0, 1, 2].map(() => client.request({ ':path': '/c' }))
    await eventually('three subscribers', () => channel.subscribers === 3)
    assert.equal(server.stats().connectionsOpen, 1)
    channel.publish('to all three')
    await Promise.all(streams.map((stream) => readUntil(stream, 'to all three')))

    streams[1].close(http2.constants.NGHTTP2_CANCEL)
    await eventually('one subscription ended', () => channel.subscribers === 2)
    channel.publish('to the other two')
    await Promise.all([streams[0], streams[2]].map((stream) => readUntil(stream, 'to the other two')))
    assert.equal(server.stats().connectionsOpen, 1)
  } finally {
    session.close()
    await server.stop()
    pki.remove()
  }
})

test('reloadTls serves a renewed certificate to new connections and keeps the old one on failure', async () => {
  const pki = makePki()
  const server = new Server({ port: 0, tlsCert: pki.cert, tlsKey: pki.key })
  try {
    await server.start()
    const before = await servedSerial(server.port, pki.ca)
    pki.issue()
    server.reloadTls()
    const after = await servedSerial(server.port, pki.ca)
    assert.notEqual(after, before)
    fs.writeFileSync(pki.cert, 'not a certificate')
    assert.throws(() => server.reloadTls(), { code: 'ERR_TIDINGS_INVALID_CONFIG', message: /PEM/ })
    assert.equal(await servedSerial(server.port, pki.ca), after)
  } finally {
    await server.stop()
    pki.remove()
  }
  const plain = new Server({ port: 0 })
  assert.throws(() => plain.reloadTls(), { code: 'ERR_TIDINGS_INVALID_CONFIG', message: /tls_cert/ })
})

test('TLS options are checked when the server is made', () => {
  const pki = makePki()
  try {
    assert.throws(() => new Server({ tlsCert: pki.cert }), { code: 'ERR_TIDINGS_INVALID_CONFIG', message: /together/ })
    assert.throws(() => new Server({ tlsCert: pki.cert, tlsKey: path.join(pki.dir, 'missing.key') }),
      { code: 'ERR_TIDINGS_INVALID_CONFIG', message: /missing\.key/ })
    assert.throws(() => new Server({ limits: { maxStreamsPerConnection: 0 } }),
      { code: 'ERR_TIDINGS_INVALID_CONFIG', message: /max_streams_per_connection/ })
    const server = new Server({ tlsCert: pki.cert, tlsKey: pki.key, http2: false, limits: { maxStreamsPerConnection: 20 } })
    assert.equal(server.stats().tlsHandshakesFailed, 0)
  } finally {
    pki.remove()
  }
})
