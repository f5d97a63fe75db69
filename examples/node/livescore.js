'use strict'
// Livescore: a mock match replayed on one broadcast channel; goals as `event: goal`.
const fs = require('node:fs')
const path = require('node:path')
const { Server } = require('tidings')
const { EXAMPLES, PAGES, parse, serve } = require('./demo_cli')

const args = parse('The livescore demo', { interval: 2 })
const server = new Server({ host: args.host, port: args.port, cors: '*' })
const scores = server.channel('/livescore', { history: 100 })
server.page('/', path.join(PAGES, 'livescore.html'))
const match = JSON.parse(fs.readFileSync(path.join(EXAMPLES, 'data', 'match.json'), 'utf8'))

serve('livescore', server, () => {
  let next = 0
  const publishNext = () => {
    const update = match[next]
    next = (next + 1) % match.length
    scores.publish(update, { event: update.event.type === 'goal' ? 'goal' : undefined })
  }
  publishNext()
  const timer = setInterval(publishNext, args.interval * 1000)
  return () => clearInterval(timer)
})
