'use strict'
// Numbers: `data: 1` … `data: 5`, 0.9 s apart, as unnamed events on /numbers and /.
const { Server } = require('tidings')
const { parse, serve, sleep } = require('./demo_cli')

const args = parse('The numbers demo', { delay: 0.9, keepalive: 15 })
const server = new Server({ host: args.host, port: args.port, cors: '*', keepalive: args.keepalive })

async function * numbers (request) {
  for (let n = 1; n <= 5; n++) {
    yield String(n)
    await sleep(args.delay)
  }
}
server.stream('/numbers', numbers)
server.stream('/', numbers)

serve('numbers', server)
