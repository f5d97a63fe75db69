'use strict'
// Progress: a per-session progress bar fed by its own stream.
const fs = require('node:fs')
const path = require('node:path')
const { Server, HTTPError } = require('tidings')
const { PAGES, parse, serve, sleep } = require('./demo_cli')

const args = parse('The progress demo', { 'min-delay': 0.1, 'max-delay': 2 })
const server = new Server({ host: args.host, port: args.port, cors: '*' })
const template = fs.readFileSync(path.join(PAGES, 'progress.html'), 'utf8')
let sessions = 0

server.route('/', (request) => template.replaceAll('{{session_id}}', String(++sessions)))

server.stream('/progress', (request) => {
  const sessionId = request.query.session_id ?? ''
  if (!/^\d+$/.test(sessionId)) throw new HTTPError(400, 'session_id must be an integer')
  return updates(sessionId)
})

async function * updates (sessionId) {
  for (let p = 0; p < 100; p++) {
    yield { event: 'progress', id: sessionId, data: { progress: p } }
    await sleep(args['min-delay'] + Math.random() * (args['max-delay'] - args['min-delay']))
  }
}

serve('progress', server)
