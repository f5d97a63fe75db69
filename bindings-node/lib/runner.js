'use strict'
// Runs JS handlers for the engine: one producer per stream client (an async
// or sync iterable, stopped with return() when the client leaves) and route
// handlers whose result is the response.

const { HTTPError } = require('./errors')
const { toNativeEvent } = require('./events')

// The status and reason an error names (an HTTPError's); any other error is
// reported and names none, and the engine answers 500.
function failure (server, request, error) {
  if (error instanceof HTTPError) return [error.status, error.reason ?? '']
  server._report(error, request)
  return [undefined, '']
}

function openStream (server, handler, request, sink) {
  let produced
  try {
    produced = handler(request)
  } catch (error) {
    return refuse(server, request, sink, error)
  }
  if (produced && typeof produced.then === 'function' && !produced[Symbol.asyncIterator]) {
    produced.then(
      (result) => run(server, request, sink, result),
      (error) => refuse(server, request, sink, error)
    )
    return
  }
  run(server, request, sink, produced)
}

function refuse (server, request, sink, error) {
  sink.refuse(...failure(server, request, error))
}

function run (server, request, sink, produced) {
  const iterator = iteratorOf(produced)
  if (!iterator) {
    refuse(server, request, sink, new TypeError(
      `stream handler for ${request.path} returned ${typeof produced}; expected an async or sync iterable`))
    return
  }
  sink.accept()
  pump(server, request, sink, iterator)
}

function iteratorOf (produced) {
  if (produced == null || typeof produced === 'string') return null
  if (typeof produced[Symbol.asyncIterator] === 'function') return produced[Symbol.asyncIterator]()
  if (typeof produced[Symbol.iterator] === 'function') return produced[Symbol.iterator]()
  return null
}

async function pump (server, request, sink, iterator) {
  let gone = false
  const stop = () => {
    if (gone) return
    gone = true
    // return() runs the generator's finally (at once if it waits at a
    // yield, else when its current await settles).
    if (typeof iterator.return === 'function') {
      Promise.resolve().then(() => iterator.return()).catch(() => {})
    }
  }
  sink.onClose(stop)
  try {
    while (!gone) {
      const { value, done } = await iterator.next()
      if (done || gone) break
      const event = toNativeEvent(value)
      while (!gone && !sink.trySend(event)) {
        // The client's queue is full: wait for room without blocking the loop.
        const hasRoom = await new Promise((resolve) => sink.whenReady(resolve))
        if (!hasRoom) stop()
      }
    }
    sink.close()
  } catch (error) {
    if (error && error.code === 'ERR_TIDINGS_DISCONNECTED') {
      stop()
    } else {
      server._report(error, request)
      sink.fail()
      stop()
    }
  }
}

function openRoute (server, handler, request, reply) {
  Promise.resolve()
    .then(() => handler(request))
    .then((result) => {
      if (typeof result === 'string' || Buffer.isBuffer(result)) {
        reply.send(result, 200, 'text/html; charset=utf-8')
      } else if (result && (typeof result.body === 'string' || Buffer.isBuffer(result.body))) {
        reply.send(result.body, result.status ?? 200, result.contentType ?? 'text/html; charset=utf-8')
      } else {
        throw new TypeError('a route handler returns a string, a Buffer or { body, status, contentType }')
      }
    })
    .catch((error) => reply.refuse(...failure(server, request, error)))
    .catch(() => {}) // the client left before the reply
}

/**
 * Runs a channel's authorize `check(request)` for one client: true or
 * undefined lets it in, false answers 403, a thrown HTTPError its status
 * and reason; anything else thrown is reported and answers 500.
 */
function openAuthorization (report, check, request, verdict) {
  Promise.resolve()
    .then(() => check(request))
    .then((result) => {
      if (result === undefined || result === true) verdict.allow()
      else if (result === false) verdict.deny(403, 'forbidden')
      else throw new TypeError('an authorize check returns true, false or undefined')
    })
    .catch((error) => {
      if (error instanceof HTTPError) return verdict.deny(error.status, error.reason ?? '')
      report(error, request)
      verdict.deny(500, 'authorization failed')
    })
    .catch(() => {}) // the client left before the verdict
}

module.exports = { openStream, openRoute, openAuthorization }
