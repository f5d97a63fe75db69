// The metrics route from Node, read by an independent Prometheus text
// parser from npm (parse-prometheus-text-format).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import tidings from '../index.js'
import { eventually, sse } from './helpers.mjs'

const { Server } = tidings

/** The families of a scrape, by name. */
async function scrape (url) {
  const response = await fetch(url)
  assert.equal(response.status, 200)
  assert.equal(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
  return new Map(parsePrometheusTextFormat(await response.text()).map((family) => [family.name, family]))
}

/** The value of the one series of `family` whose labels include `labels`. */
function value (family, labels = {}) {
  const matching = family.metrics.filter((metric) =>
    Object.entries(labels).every(([name, wanted]) => metric.labels?.[name] === wanted))
  assert.equal(matching.length, 1, `${family.name} ${JSON.stringify(labels)}`)
  return Number(matching[0].value)
}

test('metricsPath serves the counters as Prometheus text', async () => {
  const server = new Server({ port: 0, metricsPath: '/metrics' })
  const channel = server.channel('/c')
  await server.start()
  try {
    const reading = sse(`${server.url}/c`, { limit: 3 })
    await eventually('subscribed', () => channel.subscribers === 1)
    for (const n of [1, 2, 3]) channel.publish(`${n}`)
    const { events } = await reading
    assert.equal(events.length, 3)
    const families = await scrape(`${server.url}/metrics`)
    assert.equal(value(families.get('tidings_events_published_total')), 3)
    assert.equal(value(families.get('tidings_events_delivered_total')), 3)
    assert.equal(value(families.get('tidings_channel_events_published_total'), { channel: '/c' }), 3)
    assert.equal(families.get('tidings_connections_refused_total').type, 'COUNTER')
    const latency = families.get('tidings_delivery_latency_seconds')
    assert.equal(latency.type, 'HISTOGRAM')
    const writes = Number(latency.metrics[0].count)
    assert.ok(writes >= 1 && writes <= 3, `${writes} writes`)
    assert.equal(Number(latency.metrics[0].buckets['+Inf']), writes)
  } finally {
    await server.stop()
  }
})

test('a bad metricsPath is a config error, and the path is taken', async () => {
  assert.throws(() => new Server({ metricsPath: 'metrics' }), { code: 'ERR_TIDINGS_INVALID_CONFIG', message: /metrics_path/ })
  const server = new Server({ port: 0, metricsPath: '/metrics' })
  assert.throws(() => server.channel('/metrics'), /metrics/)
  await server.stop()
})
