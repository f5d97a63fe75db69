// Every signature of index.d.ts, used as a TypeScript user would and then
// run against the real module: tsc proves the declarations accept this
// code (and reject the misuse marked @ts-expect-error), and the run proves
// the runtime has what the declarations promise. test/types.test.mjs builds
// and runs it.
import assert from 'node:assert/strict'
import {
  Channel,
  HTTPError,
  Server,
  version,
  type BrokerStats,
  type ChannelOptions,
  type ChannelStats,
  type Request,
  type RouteResponse,
  type ServerOptions,
  type Stats,
  type StreamItem
} from 'tidings'

/** The keys an object has at runtime must be exactly the declared ones. */
function sameKeys<T extends object> (declared: Record<keyof T, true>, actual: T, what: string): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(declared).sort(), what)
}

async function main (): Promise<void> {
  const options: ServerOptions = {
    host: '127.0.0.1',
    port: 0,
    cors: '*',
    keepalive: 15,
    writeTimeout: 30,
    tcpKeepalive: null,
    drainTimeout: 1,
    workerThreads: 1,
    streamQueue: 8,
    limits: { maxConnections: 100, maxConnectionsPerIp: 10, maxHeadBytes: 16384, headTimeout: 5, maxStreamsPerConnection: 50 },
    http2: true,
    metricsPath: '/metrics',
    jwt: { secret: 'a secret of at least thirty-two bytes', algorithm: 'HS256', leeway: 5, cookie: null, query: 'token', endAtExpiry: true }
  }
  const server: Server = new Server(options)
  server.channel('/members', { private: true }).authorize(async (request) => request.query.user === 'ada')
  const channelOptions: ChannelOptions = { history: 10, autoId: true, maxLag: 100, keepalive: null, maxSubscribers: 5, private: true }
  const channel: Channel = server.channel('/c', channelOptions)
  let seen: Request | null = null
  const returned: Server = server
    .stream('/s', async function * (request: Request): AsyncGenerator<StreamItem> {
      seen = request
      yield 'text'
      yield Buffer.from('bytes')
      yield { event: 'named', id: '1', retry: 100, comment: 'c', data: { json: true } }
    })
    .stream('/sync', () => ['a', 'b'])
    .route('/r', (): RouteResponse => ({ body: 'made', status: 201, contentType: 'text/plain' }))
    .route('/html', async () => '<p>hi</p>')
    .page('/page', __filename)
    .files('/static', __dirname)
  assert.equal(returned, server)
  const joined: Request[] = []
  channel.onSubscribe((request: Request) => { joined.push(request) })
  channel.onUnsubscribe((_request: Request) => {})
  server.on('error', (_error: unknown, _request: Request) => {})

  // @ts-expect-error: a path is a string
  assert.throws(() => server.channel(42))
  // @ts-expect-error: retry is a number of milliseconds
  assert.throws(() => channel.publish('x', { retry: 'soon' }))
  // @ts-expect-error: keepalive is seconds or null
  assert.throws(() => new Server({ keepalive: 'fast' }))

  assert.equal(server.port, null)
  assert.equal(server.running, false)
  const port: number = await server.start()
  const url: string | null = server.url
  assert.equal(url, `http://127.0.0.1:${port}`)
  assert.equal(server.running, true)

  const id: string | null = channel.publish('x', { event: 'e', id: 'i', retry: 10, comment: 'c' })
  assert.equal(id, 'i')
  const automatic: string | null = channel.publish({ home: 1 })
  assert.equal(typeof automatic, 'string')
  assert.equal(channel.path, '/c')
  assert.equal(typeof channel.subscribers, 'number')
  assert.equal(channel.eventsPublished, 2)
  assert.equal(channel.historyLength, 2)

  const body = await (await fetch(`${url}/s?x=1`, { headers: { 'last-event-id': 'L' } })).text()
  assert.match(body, /data: text\n\ndata: bytes\n\n: c\nevent: named\nid: 1\nretry: 100\ndata: \{"json":true\}\n\n/)
  const request = seen as Request | null
  assert.ok(request)
  sameKeys<Request>({ method: true, path: true, queryString: true, query: true, headers: true, lastEventId: true, client: true, scheme: true }, request, 'Request')
  assert.deepEqual([request.method, request.path, request.queryString, request.query.x, request.lastEventId], ['GET', '/s', 'x=1', '1', 'L'])
  assert.equal(typeof request.headers.host, 'string')
  assert.deepEqual(Object.keys(request.client).sort(), ['address', 'port'])
  const made = await fetch(`${url}/r`)
  assert.deepEqual([made.status, await made.text()], [201, 'made'])

  // No TLS here: reloading has no certificate to read.
  assert.throws(() => server.reloadTls(), { code: 'ERR_TIDINGS_INVALID_CONFIG' })
  const stats: Stats = server.stats()
  sameKeys<Stats>({
    connectionsOpen: true,
    connectionsTotal: true,
    connectionsRefused: true,
    subscribersRefused: true,
    streamsOpen: true,
    eventsPublished: true,
    eventsDelivered: true,
    bytesWritten: true,
    slowConsumerDrops: true,
    writeTimeouts: true,
    tlsHandshakesFailed: true,
    channels: true,
    broker: true
  }, stats, 'Stats')
  for (const [key, value] of Object.entries(stats)) {
    if (key !== 'channels' && key !== 'broker') assert.equal(typeof value, 'number', key)
  }
  const noBroker: BrokerStats | null = stats.broker
  assert.equal(noBroker, null)
  const confirmed: string | null = await channel.publishConfirmed('sure', { event: 'named', timeout: 1 })
  assert.ok(confirmed)
  const perChannel: ChannelStats | undefined = stats.channels['/c']
  assert.ok(perChannel)
  sameKeys<ChannelStats>({ subscribers: true, eventsPublished: true, historyLength: true, clusterSubscribers: true }, perChannel, 'ChannelStats')
  assert.equal(perChannel.clusterSubscribers, null)

  const refusal: HTTPError = new HTTPError(404, 'gone')
  assert.deepEqual([refusal.status, refusal.reason, refusal.code], [404, 'gone', 'ERR_TIDINGS_HTTP'])
  assert.ok(refusal instanceof Error)
  const release: string = version
  assert.match(release, /^\d+\.\d+\.\d+/)

  await server.stop({ event: 'shutdown', data: 'bye' })
  await server.stop(null)
  assert.equal(server.running, false)
}

main().then(
  () => console.log('types match the runtime'),
  (error: unknown) => {
    console.error(error)
    process.exitCode = 1
  }
)
