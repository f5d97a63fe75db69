// Types of the public API (index.js). Checked against the runtime by
// test/types.test.js and used by examples/node/typed.ts under `tsc --noEmit`.
import { EventEmitter } from 'node:events'

export interface Limits {
  /** Most open connections; beyond it 429 with Retry-After. Default none. */
  maxConnections?: number
  /** Most open connections per client IP; beyond it 429. Default none. */
  maxConnectionsPerIp?: number
  /** Largest request head in bytes (431 beyond); at least 8192. Default 16384. */
  maxHeadBytes?: number
  /** Seconds a client has to finish its TLS handshake, then to send its request head. Default 10. */
  headTimeout?: number
  /** Most HTTP/2 streams (EventSources) open at once on one connection. Default 100. */
  maxStreamsPerConnection?: number
}

export interface ServerOptions {
  /** Address to listen on. Default '127.0.0.1'. */
  host?: string
  /** Port; 0 picks a free one (see server.port). Default 8000. */
  port?: number
  /** '*' for any origin, or a list of allowed origins. Default none. */
  cors?: '*' | string[] | null
  /** Seconds between keep-alive comments on idle streams; null disables. Default 15. */
  keepalive?: number | null
  /** Seconds a stalled write may take before the connection is closed. Default 30. */
  writeTimeout?: number
  /** Seconds of silence before TCP keep-alive probes; null disables. Default 60. */
  tcpKeepalive?: number | null
  /** Seconds stop() lets streams finish. Default 5. */
  drainTimeout?: number
  /** Engine threads; 0 means one per core. */
  workerThreads?: number
  /** Events queued per stream client before the producer waits. Default 32. */
  streamQueue?: number
  limits?: Limits
  /**
   * Let other processes listen on the same host and port (SO_REUSEPORT): the
   * kernel spreads new connections among them; each has its own channels.
   * Default false, and each has its own channels unless they share a broker.
   */
  reusePort?: boolean
  /**
   * A Redis URL (`redis://[:password@]host[:port][/db]`, or `rediss://` for
   * Redis over TLS) that joins this server's channels with every server on
   * it: a publish on any reaches the subscribers of all, in one order, and a
   * client resumes on any of them. Default none (channels live in this
   * process).
   */
  broker?: string
  /** Most publishes waiting for the broker; beyond it publish throws ERR_TIDINGS_BROKER_UNAVAILABLE. Default 10000. */
  brokerQueue?: number
  /** A PEM file of the certificate authorities a `rediss://` broker's certificate must chain to. Default: the system's. */
  brokerCa?: string
  /** A PEM file with the certificate chain (own certificate first): with tlsKey, the server speaks HTTPS only. */
  tlsCert?: string
  /** A PEM file with tlsCert's private key (PKCS#8, PKCS#1 or SEC1). */
  tlsKey?: string
  /** Whether clients may speak HTTP/2: over TLS via ALPN, over plain TCP by prior knowledge. Default true. */
  http2?: boolean
  /**
   * A path that serves the server's metrics in the Prometheus text format
   * (OpenMetrics to a scraper that asks for it), e.g. '/metrics'. Open to
   * every client that reaches the port. Default: none.
   */
  metricsPath?: string
  /** How tokens are verified for private channels (ChannelOptions.private); see docs/auth.md. */
  jwt?: JwtOptions
  /** A Mercure hub (true for the defaults); see docs/hub.md. Default: none. */
  hub?: boolean | HubOptions
}

/**
 * A Mercure hub: subscribe with GET path?topic=..., publish with a form POST
 * and a token whose mercure.publish claim selects the topics.
 */
export interface HubOptions {
  /** Default '/.well-known/mercure'. */
  path?: string
  /** The publishers' key: a secret for HS*, else a public key in PEM. Without one nothing is published over HTTP. */
  publisherKey?: string | Buffer
  /** The subscribers' key: tokens whose mercure.subscribe claim selects a private update's topic receive it. */
  subscriberKey?: string | Buffer
  /** The tokens' algorithm. Default 'HS256'. */
  algorithm?: string
  /** Whether subscribers without a token receive public updates. Default true. */
  anonymous?: boolean
  /** What channel topics start with (e.g. 'https://example.com'); default: the topic is the channel's path. */
  topicBase?: string
  /** Updates kept for subscribers that resume. Default 1000. */
  history?: number
  /** Most topic selectors per subscription. Default 64. */
  maxTopics?: number
  /** Largest publish body in bytes. Default 1 MiB. */
  maxPublishBytes?: number
}

/** Token verification: give exactly one of secret, keyFile and jwksFile. */
export interface JwtOptions {
  /** The HMAC secret (HS256, HS384, HS512). */
  secret?: string | Buffer
  /** A PEM file with the public key (RS*, PS*, ES256, ES384, EdDSA). */
  keyFile?: string
  /** A JSON Web Key Set file; a token's kid picks the key. */
  jwksFile?: string
  /** The one algorithm accepted. Default 'HS256'. */
  algorithm?: string
  /** Seconds of clock skew allowed on exp and nbf. Default 5, at most 300. */
  leeway?: number
  /** The cookie that may carry the token; null reads none. Default 'tidings_token'. */
  cookie?: string | null
  /** The query parameter that may carry the token; null reads none. Default 'access_token'. */
  query?: string | null
  /** The claim whose subscribe list names the granted channels. Default 'tidings'. */
  claim?: string
  /** When set, tokens must carry this aud. */
  audience?: string
  /** When set, tokens must carry this iss. */
  issuer?: string
  /** Whether a private subscription ends when its token expires. Default true. */
  endAtExpiry?: boolean
}

export interface ChannelOptions {
  /** Events kept for clients that resume with Last-Event-ID; 0 keeps none. Default 1000. */
  history?: number
  /** Number events that have no id. Default true. */
  autoId?: boolean
  /** Events a subscriber may fall behind before it is disconnected to resume. Default 1024. */
  maxLag?: number
  /** Keep-alive seconds for this channel, overriding the server's; 0 or null turns them off. */
  keepalive?: number | null
  /** Most subscribers at once (503 beyond). Default none. */
  maxSubscribers?: number
  /** Subscribers must bring a token (ServerOptions.jwt) that grants this channel: 401 without, 403 for another channel. */
  private?: boolean
}

/** Data: a string as is, a Buffer as UTF-8, anything else as JSON. */
export type EventData = string | Buffer | Uint8Array | object

export interface EventFields {
  /** The event type; no CR or LF. */
  event?: string
  /** The event id; no CR, LF or NUL. */
  id?: string
  /** The client's reconnection delay in milliseconds. */
  retry?: number
  comment?: string
}

/** What a stream may yield: data, or an object of event fields. */
export type StreamItem = string | Buffer | Uint8Array | (EventFields & { data?: EventData })

export interface Request {
  method: string
  path: string
  queryString: string
  /** Query parameters, decoded; the first value of each name. */
  query: Record<string, string>
  /** Headers with lower-case names. */
  headers: Record<string, string>
  /** The Last-Event-ID header, else the lastEventId query parameter. */
  lastEventId: string | null
  client: { address: string; port: number }
  /** 'https' if the request arrived over TLS, else 'http'. */
  scheme: 'http' | 'https'
}

export type StreamHandler = (request: Request) =>
  | AsyncIterable<StreamItem>
  | Iterable<StreamItem>
  | Promise<AsyncIterable<StreamItem> | Iterable<StreamItem>>

export interface RouteResponse {
  body: string | Buffer
  status?: number
  contentType?: string
}

export type RouteHandler = (request: Request) => string | Buffer | RouteResponse | Promise<string | Buffer | RouteResponse>

export interface ChannelStats {
  /** Subscribers on this server. */
  subscribers: number
  eventsPublished: number
  historyLength: number
  /** Subscribers on every server sharing the broker, counted every 2 s; null without a broker (or before the first count). */
  clusterSubscribers: number | null
}

export interface Stats {
  connectionsOpen: number
  connectionsTotal: number
  connectionsRefused: number
  subscribersRefused: number
  streamsOpen: number
  eventsPublished: number
  eventsDelivered: number
  bytesWritten: number
  slowConsumerDrops: number
  writeTimeouts: number
  /** TLS handshakes that failed or did not finish within the head timeout. */
  tlsHandshakesFailed: number
  channels: Record<string, ChannelStats>
  /** The broker connection's state; null without a broker. */
  broker: BrokerStats | null
}

export interface BrokerStats {
  /** The broker's URL, without its password. */
  url: string
  /** Whether both broker connections (publishing, reading) are up. */
  connected: boolean
  /** Broker connections lost or not made. */
  faults: number
  /** Connections made again after a fault. */
  reconnects: number
  /** Publishes waiting for the broker. */
  queued: number
  /** Publishes the broker stored. */
  sent: number
  /** Publishes refused: by the broker, or because the queue was full. */
  refused: number
  /** Events read from the broker into this server's channels. */
  received: number
  /** Times subscribers were sent `reset` because the broker lost entries. */
  gaps: number
  /** The last fault, or null. */
  lastError: string | null
}

/** A broadcast channel: every publish reaches every current subscriber. */
export declare class Channel {
  private constructor ()
  /** Publishes one event; returns the id it was sent with, or null. Never waits. */
  publish (data: EventData, options?: EventFields): string | null
  /**
   * Publishes one event and resolves once it is stored (with a broker: by
   * the broker and in this server's history) to the id it is sent with, the
   * broker's automatic id included. Rejects with ERR_TIDINGS_TIMED_OUT after
   * `timeout` seconds, ERR_TIDINGS_BROKER_UNAVAILABLE when the queue is full.
   */
  publishConfirmed (data: EventData, options?: EventFields & { timeout?: number }): Promise<string | null>
  readonly path: string
  readonly subscribers: number
  readonly eventsPublished: number
  readonly historyLength: number
  onSubscribe (callback: (request: Request) => void): void
  onUnsubscribe (callback: (request: Request) => void): void
  /**
   * Decides who may subscribe at the channel's path: resolve true or
   * undefined to let in, false for 403, throw an HTTPError for its status.
   */
  authorize (check: (request: Request) => boolean | undefined | Promise<boolean | undefined>): this
}

/** An SSE server whose transport runs in Rust. Emits 'error' (error, request) when a handler fails. */
export declare class Server extends EventEmitter {
  constructor (options?: ServerOptions)
  channel (path: string, options?: ChannelOptions): Channel
  stream (path: string, handler: StreamHandler): this
  route (path: string, handler: RouteHandler): this
  page (path: string, file: string): this
  files (prefix: string, directory: string): this
  /** Resolves with the bound port. */
  start (): Promise<number>
  /** Open streams get what was queued, then `farewell`, then end. */
  stop (farewell?: EventData | (EventFields & { data?: EventData }) | null): Promise<void>
  readonly port: number | null
  readonly running: boolean
  readonly url: string | null
  stats (): Stats
  /** Reads tlsCert and tlsKey again: new connections get the new pair, open ones keep theirs. */
  reloadTls (): void
  on (event: 'error', listener: (error: unknown, request: Request) => void): this
}

/** Throw from a handler before anything is sent to answer with this status. */
export declare class HTTPError extends Error {
  constructor (status: number, reason?: string)
  readonly status: number
  readonly reason: string
  readonly code: 'ERR_TIDINGS_HTTP'
}

export declare const version: string
