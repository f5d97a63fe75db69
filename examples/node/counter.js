'use strict'
// Counter: 20 `new_message` events a second apart, then `end_event`, per client.
const path = require('node:path')
const { Server } = require('tidings')
const { PAGES, parse, serve, sleep } = require('./demo_cli')

const args = parse('The counter demo', { delay: 1 })
const server = new Server({ host: args.host, port: args.port, cors: '*' })

server.stream('/stream', async function * counter (request) {
  for (let n = 1; n <= 20; n++) {
    yield { event: 'new_message', id: 'message_id', retry: 15000, data: `Counter value ${n}` }
    await sleep(args.delay)
  }
  yield { event: 'end_event', id: 'message_id', retry: 15000, data: 'End of the stream' }
})
server.page('/', path.join(PAGES, 'counter.html'))

serve('counter', server)
