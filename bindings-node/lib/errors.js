'use strict'

/**
 * Throw from a stream or route handler, before anything is sent, to answer
 * with that HTTP status instead: `throw new HTTPError(400, 'session_id must
 * be an integer')`.
 */
class HTTPError extends Error {
  constructor (status, reason = '') {
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new RangeError(`HTTPError status must be 400-599, not ${status}`)
    }
    super(`${status} ${reason}`.trim())
    this.name = 'HTTPError'
    this.code = 'ERR_TIDINGS_HTTP'
    this.status = status
    this.reason = reason
  }
}

module.exports = { HTTPError }
