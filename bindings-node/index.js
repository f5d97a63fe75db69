'use strict'
// tidings for Node: an embeddable Server-Sent Events engine whose transport
// runs in Rust on its own threads. See index.d.ts for the API.

const { EventEmitter } = require('node:events')
const path = require('node:path')

const native = require('./native.js')
const { HTTPError } = require('./lib/errors')
const { publishEvent } = require('./lib/events')
const runner = require('./lib/runner')

// Seconds as given (the engine checks their range); null means 0, which
// turns a keep-alive off.
const seconds = (name, value) => {
  if (value === undefined) return undefined
  if (value === null) return 0
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number of seconds or null`)
  return value
}

const requireString = (name, value) => {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string, not ${typeof value}`)
  return value
}

const requireFunction = (name, value) => {
  if (typeof value !== 'function') throw new TypeError(`${name} must be a function`)
  return value
}

// The token settings of private channels; `null` for `cookie` or `query`
// reads none there (sent to the engine as an empty name).
const jwtOptions = (jwt) => {
  if (jwt === undefined || jwt === null) return undefined
  if (typeof jwt !== 'object') throw new TypeError('jwt must be an object')
  const named = (name, value) => (value === null ? '' : value === undefined ? undefined : requireString(name, value))
  const secret = jwt.secret === undefined || Buffer.isBuffer(jwt.secret)
    ? jwt.secret
    : Buffer.from(requireString('jwt.secret', jwt.secret), 'utf8')
  return {
    secret,
    keyFile: jwt.keyFile,
    jwksFile: jwt.jwksFile,
    algorithm: jwt.algorithm,
    leeway: jwt.leeway === null ? 0 : jwt.leeway,
    cookie: named('jwt.cookie', jwt.cookie),
    query: named('jwt.query', jwt.query),
    claim: jwt.claim,
    audience: jwt.audience,
    issuer: jwt.issuer,
    endAtExpiry: jwt.endAtExpiry
  }
}

// A Mercure hub's settings; string keys are sent as their UTF-8 bytes.
const hubOptions = (hub) => {
  if (hub === undefined || hub === null || hub === false) return undefined
  if (hub === true) return {}
  if (typeof hub !== 'object') throw new TypeError('hub must be true or an object')
  const key = (name, value) => value === undefined || Buffer.isBuffer(value)
    ? value
    : Buffer.from(requireString(name, value), 'utf8')
  return {
    path: hub.path,
    publisherKey: key('hub.publisherKey', hub.publisherKey),
    subscriberKey: key('hub.subscriberKey', hub.subscriberKey),
    algorithm: hub.algorithm,
    anonymous: hub.anonymous,
    topicBase: hub.topicBase,
    history: hub.history,
    maxTopics: hub.maxTopics,
    maxPublishBytes: hub.maxPublishBytes
  }
}

// Callbacks the engine calls through threadsafe functions must never throw:
// an exception there is fatal to the process. Report it instead.
const guarded = (report, callback) => (...args) => {
  try {
    callback(...args)
  } catch (error) {
    report(error, args[0])
  }
}

/** A broadcast channel: every publish reaches every current subscriber. */
class Channel {
  constructor (inner, report) {
    this._inner = inner
    this._report = report
  }

  /** Publishes one event; returns the id it was sent with, or null. Any thread-safe, never waits. */
  publish (data, options) {
    return this._inner.publish(publishEvent(data, options))
  }

  /**
   * Publishes one event; resolves once it is stored (with a broker: by the
   * broker, and in this server's history) to the id it is sent with.
   * `options.timeout` (seconds) bounds the wait.
   */
  async publishConfirmed (data, options = {}) {
    const { timeout, ...fields } = options
    try {
      return await this._inner.publishConfirmed(publishEvent(data, fields), seconds('timeout', timeout))
    } catch (error) {
      // Errors of the thread-pool wait carry their code in the message.
      const coded = /^(ERR_TIDINGS_[A-Z_]+): /.exec(error.message)
      if (coded) {
        error.code = coded[1]
        error.message = error.message.slice(coded[0].length)
      }
      throw error
    }
  }

  get path () { return this._inner.path }
  get subscribers () { return this._inner.subscribers }
  get eventsPublished () { return this._inner.eventsPublished }
  get historyLength () { return this._inner.historyLen }

  /** Calls `callback(request)` once for every new subscriber. */
  onSubscribe (callback) { this._inner.onSubscribe(guarded(this._report, requireFunction('callback', callback))) }
  /**
   * Asks `check(request)` (sync or async) about every client that subscribes
   * at the channel's path: true or undefined lets it in, false answers 403,
   * a thrown HTTPError its status and reason. It runs after the token check
   * of a private channel and must decide within limits.headTimeout (else 503).
   */
  authorize (check) {
    requireFunction('check', check)
    this._inner.authorize(guarded(this._report, (request, verdict) =>
      runner.openAuthorization(this._report, check, request, verdict)))
    return this
  }
  /** Calls `callback(request)` once for every subscriber that leaves, however it left. */
  onUnsubscribe (callback) { this._inner.onUnsubscribe(guarded(this._report, requireFunction('callback', callback))) }
}

/** An SSE server. Emits 'error' (error, request) when a handler fails. */
class Server extends EventEmitter {
  constructor (options = {}) {
    super()
    if (options === null || typeof options !== 'object') throw new TypeError('options must be an object')
    const { limits = {} } = options
    this._native = new native.NativeServer({
      host: options.host,
      port: options.port,
      cors: options.cors,
      keepalive: seconds('keepalive', options.keepalive),
      writeTimeout: seconds('writeTimeout', options.writeTimeout),
      tcpKeepalive: seconds('tcpKeepalive', options.tcpKeepalive),
      drainTimeout: seconds('drainTimeout', options.drainTimeout),
      workerThreads: options.workerThreads,
      streamQueue: options.streamQueue,
      maxConnections: limits.maxConnections,
      maxConnectionsPerIp: limits.maxConnectionsPerIp,
      maxHeadBytes: limits.maxHeadBytes,
      headTimeout: seconds('limits.headTimeout', limits.headTimeout),
      reusePort: options.reusePort,
      broker: options.broker,
      brokerQueue: options.brokerQueue,
      brokerCa: options.brokerCa,
      tlsCert: options.tlsCert,
      tlsKey: options.tlsKey,
      http2: options.http2,
      maxStreamsPerConnection: limits.maxStreamsPerConnection,
      metricsPath: options.metricsPath,
      jwt: jwtOptions(options.jwt),
      hub: hubOptions(options.hub)
    })
    this._keepProcessAlive = null
    this._scheme = options.tlsCert ? 'https' : 'http'
  }

  /** Registers a broadcast channel at `path`. */
  channel (routePath, options = {}) {
    return new Channel(this._native.channel(requireString('path', routePath), {
      history: options.history,
      autoId: options.autoId,
      maxLag: options.maxLag,
      keepalive: seconds('keepalive', options.keepalive),
      maxSubscribers: options.maxSubscribers,
      private: options.private
    }), (error, request) => this._report(error, request))
  }

  /**
   * Registers a stream: `handler(request)` returns (or resolves to) an async
   * or sync iterable of events for that one client, e.g. an async generator.
   */
  stream (routePath, handler) {
    requireFunction('handler', handler)
    const report = (error, request) => this._report(error, request)
    this._native.stream(requireString('path', routePath),
      guarded(report, (request, sink) => runner.openStream(this, handler, request, sink)))
    return this
  }

  /** Registers a route whose response `handler(request)` computes. */
  route (routePath, handler) {
    requireFunction('handler', handler)
    const report = (error, request) => this._report(error, request)
    this._native.route(requireString('path', routePath),
      guarded(report, (request, reply) => runner.openRoute(this, handler, request, reply)))
    return this
  }

  /** Serves `file` at `path`. */
  page (routePath, file) {
    this._native.page(requireString('path', routePath), path.resolve(requireString('file', file)))
    return this
  }

  /** Serves the files under `directory` below `prefix`. */
  files (prefix, directory) {
    this._native.files(requireString('prefix', prefix), path.resolve(requireString('directory', directory)))
    return this
  }

  /** Starts serving on the engine's threads; resolves with the bound port. */
  async start () {
    const port = this._native.start()
    // Like an http.Server, a running server keeps the process alive.
    this._keepProcessAlive = setInterval(() => {}, 2 ** 31 - 1)
    return port
  }

  /**
   * Stops: open streams get what was already queued, then `farewell` if
   * given, then end. Resolves once the engine's threads have finished.
   */
  async stop (farewell) {
    clearInterval(this._keepProcessAlive)
    this._keepProcessAlive = null
    const event = farewell === undefined || farewell === null
      ? null
      : typeof farewell === 'object' && !Buffer.isBuffer(farewell) ? publishEvent(farewell.data, farewell) : publishEvent(farewell)
    await this._native.stop(event)
  }

  get port () { return this._native.port }
  get running () { return this._native.running }
  get url () {
    const port = this._native.port
    if (port === null || port === undefined) return null
    const host = this._native.host
    const scheme = this._scheme
    return host.includes(':') ? `${scheme}://[${host}]:${port}` : `${scheme}://${host}:${port}`
  }

  /** Counters: connections, streams, events published and delivered, bytes, per channel. */
  stats () { return this._native.stats() }

  /**
   * Reads `tlsCert` and `tlsKey` again (a renewed certificate): new
   * connections get the new pair, open ones keep theirs. Throws
   * ERR_TIDINGS_INVALID_CONFIG, keeping the pair in service, if the files do
   * not hold a matching pair or the server has no TLS.
   */
  reloadTls () { this._native.reloadTls() }

  _report (error, request) {
    if (this.listenerCount('error') > 0) {
      this.emit('error', error, request)
    } else {
      console.error(`tidings: handler for ${request?.path} failed:`, error)
    }
  }
}

module.exports = { Server, Channel, HTTPError, version: native.version() }
