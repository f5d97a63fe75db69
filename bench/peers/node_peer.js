'use strict'
/**
 * Peer: tidings driven from Node (the binding in bindings-node). The transport
 * runs in Rust on one engine thread; JavaScript only produces events, from the
 * event loop as a Node application would: timers pace the broadcast, and a
 * stream is an async generator.
 *
 * node bench/peers/node_peer.js [--port P --subscribers N --events E --rate R
 *   --size S --mode broadcast|stream --threads T]   (the peer protocol of bench/run.py)
 */

const { parseArgs } = require('node:util')
const { setTimeout: sleep } = require('node:timers/promises')
const { Server } = require('../../bindings-node')

const SUBSCRIBER_WAIT_MS = 120_000
const SUBSCRIBER_POLL_MS = 10
const SETTLE_MS = 300 // lets the last connections settle before the clock starts
const YIELD_EVERY = 1000 // at rate 0, events published between turns of the event loop

function parse () {
  const defaults = { port: '0', subscribers: '1', events: '1000', rate: '0', size: '100', mode: 'broadcast', threads: '1', payloads: 'live' }
  const options = Object.fromEntries(Object.entries(defaults).map(([name, value]) => [name, { type: 'string', default: value }]))
  const { values } = parseArgs({ options })
  if (!['broadcast', 'stream'].includes(values.mode)) throw new Error(`--mode ${values.mode}: expected broadcast or stream`)
  if (!['live', 'prebuilt'].includes(values.payloads)) throw new Error(`--payloads ${values.payloads}: expected live or prebuilt`)
  const args = { mode: values.mode, payloads: values.payloads }
  for (const name of ['port', 'subscribers', 'events', 'rate', 'size', 'threads']) {
    args[name] = Number(values[name])
    if (!(args[name] >= 0)) throw new Error(`--${name} ${values[name]}: expected a number >= 0`)
  }
  return args
}

// Unix time = the monotonic clock + this offset, read the moment Date.now()
// ticks to a new millisecond, so it is exact to the few microseconds the
// busy loop takes to see the tick, and never ahead of the system clock the
// load generator reads. (performance.timeOrigin could be off by more than a
// whole delivery's latency, which made some latencies read as negative.)
const EPOCH_OFFSET_NS = (() => {
  const start = Date.now()
  let now = start
  while (now === start) now = Date.now()
  return BigInt(now) * 1_000_000n - process.hrtime.bigint()
})()

/** Unix-epoch nanoseconds, finer than a millisecond (Date.now() has only milliseconds). */
function nowNs () {
  return process.hrtime.bigint() + EPOCH_OFFSET_NS
}

/** `<seq> <send time in Unix ns>`, padded with `x` to `size` bytes. */
function payload (seq, size) {
  const head = `${seq} ${nowNs()}`
  return head.length + 1 < size ? `${head} ${'x'.repeat(size - head.length - 1)}` : head
}

async function sleepUntil (due) {
  // Timers have whole milliseconds and may fire a little early: never publish before due.
  for (let wait = due - performance.now(); wait > 0; wait = due - performance.now()) await sleep(Math.ceil(wait))
}

/**
 * Event seq's data: built when published, or before the clock starts with
 * --payloads prebuilt (publish cost alone; their send times are then meaningless).
 */
function payloads (args) {
  if (args.payloads === 'live') return (seq) => payload(seq, args.size)
  const built = Array.from({ length: args.events }, (_, seq) => payload(seq, args.size))
  return (seq) => built[seq]
}

/**
 * Waits for the subscribers (printing `subscribers <N>`), then publishes every
 * event on time (event seq is due seq / rate after the first) and prints
 * `published <events> in <seconds>`.
 */
async function publishOnSchedule (args, subscribers, publish) {
  const data = payloads(args)
  const deadline = performance.now() + SUBSCRIBER_WAIT_MS
  while (subscribers() < args.subscribers) {
    if (performance.now() > deadline) throw new Error(`${subscribers()} of ${args.subscribers} subscribers after ${SUBSCRIBER_WAIT_MS / 1000} s`)
    await sleep(SUBSCRIBER_POLL_MS)
  }
  console.log(`subscribers ${subscribers()}`)
  await sleep(SETTLE_MS)
  const start = performance.now()
  for (let seq = 0; seq < args.events; seq++) {
    if (args.rate > 0) await sleepUntil(start + (seq * 1000) / args.rate)
    else if (seq % YIELD_EVERY === YIELD_EVERY - 1) await new Promise(setImmediate)
    publish(data(seq))
  }
  console.log(`published ${args.events} in ${((performance.now() - start) / 1000).toFixed(6)}`)
}

async function main () {
  const args = parse()
  const server = new Server({ host: '127.0.0.1', port: args.port, keepalive: null, workerThreads: args.threads })
  // Stays alive after publishing, until the harness kills the process.
  setInterval(() => {}, 1 << 30)
  if (args.mode === 'stream') {
    server.stream('/sse', async function * ownStream () {
      for (let seq = 0; seq < args.events; seq++) yield payload(seq, args.size)
    })
    console.log(`port ${await server.start()}`)
    return
  }
  const channel = server.channel('/sse', { history: 0, maxLag: Math.max(args.events, 1024) })
  console.log(`port ${await server.start()}`)
  await publishOnSchedule(args, () => channel.subscribers, (data) => channel.publish(data))
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
