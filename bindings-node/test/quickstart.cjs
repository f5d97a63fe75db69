// The README's Node quick start, run by `make test-node` from a fresh
// project that installed tidings (from the folder, then from `npm pack`).
const assert = require('node:assert/strict')
const { Server } = require('tidings')

async function main () {
  const server = new Server({ host: '127.0.0.1', port: 0, cors: '*' })
  const scores = server.channel('/livescore', { history: 100 })
  scores.publish({ home: 1, away: 0 }, { event: 'goal' })
  server.stream('/stream', async function * (request) { yield { event: 'new_message', data: 'hi' } })
  await server.start()
  const body = await (await fetch(`${server.url}/stream`)).text()
  assert.equal(body, 'event: new_message\ndata: hi\n\n')
  const replay = await fetch(`${server.url}/livescore`, { headers: { 'last-event-id': 'unknown' } })
  const reader = replay.body.getReader()
  const { value } = await reader.read()
  assert.match(Buffer.from(value).toString(), /event: reset/)
  await reader.cancel()
  await server.stop()
  console.log('quick start OK on port', server.port ?? 'closed')
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
