import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { ROOT, demo, sse } from './helpers.mjs'

test('counter: 20 new_message events then end_event, CORS *', async () => {
  const running = await demo('counter', '--delay', '0.001')
  try {
    const { response, events, retries } = await sse(`${running.url}/stream`)
    assert.equal(response.headers.get('access-control-allow-origin'), '*')
    const expected = Array.from({ length: 20 }, (_, i) => ({ event: 'new_message', id: 'message_id', data: `Counter value ${i + 1}` }))
    expected.push({ event: 'end_event', id: 'message_id', data: 'End of the stream' })
    assert.deepEqual(events, expected)
    assert.deepEqual(retries, Array(21).fill(15000))
  } finally {
    await running.stop()
  }
})

test('numbers: unnamed 1..5 on /numbers and /, keep-alive comments when idle', async () => {
  let running = await demo('numbers', '--delay', '0.001')
  try {
    for (const route of ['/numbers', '/']) {
      assert.deepEqual((await sse(running.url + route)).events.map((e) => [e.event, e.data]),
        ['1', '2', '3', '4', '5'].map((n) => ['message', n]))
    }
  } finally {
    await running.stop()
  }
  running = await demo('numbers', '--delay', '0.4', '--keepalive', '0.1')
  try {
    const { comments } = await sse(`${running.url}/numbers`)
    assert.ok(comments.length > 0, 'an idle stream got no keep-alive comment')
  } finally {
    await running.stop()
  }
})

test('progress: sessions in the page, 400 for bad ids, 100 progress events', async () => {
  const running = await demo('progress', '--min-delay', '0', '--max-delay', '0.001')
  try {
    const first = await (await fetch(`${running.url}/`)).text()
    const second = await (await fetch(`${running.url}/`)).text()
    assert.ok(first.includes('const sessionId = "1";') && second.includes('const sessionId = "2";'))
    for (const bad of ['', '?session_id=', '?session_id=abc']) {
      const refused = await fetch(`${running.url}/progress${bad}`)
      assert.equal(refused.status, 400, bad)
      assert.match(await refused.text(), /session_id/)
    }
    const { events } = await sse(`${running.url}/progress?session_id=7`)
    assert.deepEqual(events.map((e) => [e.event, e.id, JSON.parse(e.data)]),
      Array.from({ length: 100 }, (_, p) => ['progress', '7', { progress: p }]))
  } finally {
    await running.stop()
  }
})

test('livescore: the match in order, goals named, resume from Last-Event-ID', async () => {
  const match = JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', 'data', 'match.json'), 'utf8'))
  const running = await demo('livescore', '--interval', '0.02')
  try {
    const { events } = await sse(`${running.url}/livescore`, { limit: 40 })
    const updates = events.slice(0, 40).map((e) => JSON.parse(e.data))
    const start = match.findIndex((update) => JSON.stringify(update) === JSON.stringify(updates[0]))
    assert.deepEqual(updates, updates.map((_, i) => match[(start + i) % match.length]))
    events.slice(0, 40).forEach((event, i) => assert.equal(event.event, updates[i].event.type === 'goal' ? 'goal' : 'message'))
    const resumed = await sse(`${running.url}/livescore`, { headers: { 'last-event-id': events[9].id }, limit: 30 })
    assert.deepEqual(resumed.events.slice(0, 30).map((e) => e.data), events.slice(10, 40).map((e) => e.data))
  } finally {
    await running.stop()
  }
})
