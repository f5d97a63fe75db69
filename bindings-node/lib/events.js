'use strict'
// JS values to the native event shape: strings as is, Buffers as UTF-8,
// objects and arrays as JSON; stream items may also be objects of event fields.

const FIELDS = new Set(['data', 'event', 'id', 'retry', 'comment'])
const decoder = new TextDecoder('utf-8', { fatal: true })

function dataText (data) {
  if (typeof data === 'string') return data
  if (Buffer.isBuffer(data) || data instanceof Uint8Array) {
    try {
      return decoder.decode(data)
    } catch {
      const error = new TypeError('event data bytes are not valid UTF-8')
      error.code = 'ERR_TIDINGS_INVALID_EVENT'
      throw error
    }
  }
  if (data !== null && typeof data === 'object') return JSON.stringify(data)
  throw new TypeError(`event data must be a string, Buffer, object or array, not ${typeof data}`)
}

function optionalString (name, value) {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw new TypeError(`event field "${name}" must be a string, not ${typeof value}`)
  return value
}

/** publish(data, { event, id, retry, comment }) → the native event. */
function publishEvent (data, options = {}) {
  if (options === null || typeof options !== 'object') throw new TypeError('publish options must be an object')
  const retry = options.retry
  if (retry !== undefined && retry !== null && (!Number.isInteger(retry) || retry < 0)) {
    throw new TypeError('retry must be a non-negative integer of milliseconds')
  }
  return {
    data: data === undefined || data === null ? undefined : dataText(data),
    event: optionalString('event', options.event),
    id: optionalString('id', options.id),
    retry: retry ?? undefined,
    comment: optionalString('comment', options.comment)
  }
}

/** A stream item: a string, a Buffer, or an object of event fields. */
function toNativeEvent (item) {
  if (typeof item === 'string' || Buffer.isBuffer(item) || item instanceof Uint8Array) {
    return { data: dataText(item) }
  }
  if (item !== null && typeof item === 'object' && !Array.isArray(item)) {
    for (const key of Object.keys(item)) {
      if (!FIELDS.has(key)) {
        throw new TypeError(`a stream item holds event fields (${[...FIELDS].join(', ')}), not "${key}"; ` +
          'to send JSON, yield { data: {...} }')
      }
    }
    return publishEvent(item.data, item)
  }
  throw new TypeError(`a stream can yield a string, Buffer or object of event fields, not ${typeof item}`)
}

module.exports = { publishEvent, toNativeEvent }
