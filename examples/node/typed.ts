// Typed use of the public API; `tsc --noEmit` checks it in `make test`.
import { Server, HTTPError, type Request, type StreamItem } from 'tidings'

const server = new Server({ host: '127.0.0.1', port: 0, cors: ['http://app.test'], keepalive: null })
const scores = server.channel('/livescore', { history: 100 })
const id: string | null = scores.publish({ home: 1, away: 0 }, { event: 'goal', retry: 5000 })

server.stream('/stream', async function * counter (request: Request): AsyncGenerator<StreamItem> {
  const last: string | null = request.lastEventId
  for (let n = 1; n <= 3; n++) yield { event: 'new_message', id: last ?? '0', data: `Counter value ${n}` }
})

server.stream('/checked', (request) => {
  if (request.query.n === undefined) throw new HTTPError(400, 'n is required')
  return [request.query.n]
})

server.route('/', () => ({ body: '<h1>hi</h1>', status: 200 }))
server.on('error', (error, request) => console.error(request.path, error))

async function main (): Promise<void> {
  const port: number = await server.start()
  console.log(port, server.url, server.stats().eventsDelivered, id)
  await server.stop({ event: 'shutdown', data: 'bye' })
}
void main()
