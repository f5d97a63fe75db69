// Test helpers: an independent SSE client (fetch + eventsource-parser from
// npm, never our own parser) and demo processes on free ports.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createParser } from 'eventsource-parser'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const PATIENCE = 10_000

/**
 * Reads an event stream until it ends or `limit` events arrived.
 * Resolves { response, events: [{ event, id, data }], retries, comments }.
 */
export async function sse (url, { headers = {}, limit = Infinity } = {}) {
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(new Error(`no end of ${url} within ${PATIENCE} ms`)), PATIENCE)
  const events = []
  const retries = []
  const comments = []
  const parser = createParser({
    onEvent: (message) => events.push({ event: message.event ?? 'message', id: message.id ?? '', data: message.data }),
    onRetry: (retry) => retries.push(retry),
    onComment: (comment) => comments.push(comment)
  })
  try {
    const response = await fetch(url, { headers, signal: abort.signal })
    if (response.headers.get('content-type')?.startsWith('text/event-stream')) {
      const decoder = new TextDecoder()
      for await (const chunk of response.body) {
        parser.feed(decoder.decode(chunk, { stream: true }))
        if (events.length >= limit) break
      }
    }
    return { response, events, retries, comments }
  } finally {
    clearTimeout(timer)
    abort.abort()
  }
}

/** Runs examples/node/<name>.js on a free port; `stop()` sends Ctrl-C and expects exit 0. */
export async function demo (name, ...args) {
  const child = spawn(process.execPath, [path.join(ROOT, 'examples', 'node', `${name}.js`), '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr += chunk })
  const url = await new Promise((resolve, reject) => {
    let stdout = ''
    const timer = setTimeout(() => reject(new Error(`${name} printed no URL: ${stdout} ${stderr}`)), PATIENCE)
    child.stdout.on('data', (chunk) => {
      stdout += chunk
      const match = /open (http:\/\/[^/\s]+)\//.exec(stdout)
      if (match) {
        clearTimeout(timer)
        resolve(match[1])
      }
    })
    child.on('exit', (code) => reject(new Error(`${name} exited with ${code}: ${stderr}`)))
  })
  return {
    url,
    stderr: () => stderr,
    async stop () {
      const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
      child.kill('SIGINT')
      const outcome = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve(null), PATIENCE))])
      if (!outcome) {
        child.kill('SIGKILL')
        throw new Error(`${name} did not stop on Ctrl-C`)
      }
      if (outcome.code !== 0) throw new Error(`${name} exited with ${outcome.code}: ${stderr}`)
    }
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export async function eventually (what, condition) {
  const deadline = Date.now() + PATIENCE
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

/** A port nothing listens on now. */
export async function freePort () {
  const net = await import('node:net')
  return new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

/** A redis-server of the test's own on a free loopback port, without persistence; `stop()` kills it. */
export async function redisServer () {
  const net = await import('node:net')
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore'
  })
  const reachable = () => new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => { socket.end(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
  await eventually('redis-server to listen', reachable)
  return {
    url: `redis://127.0.0.1:${port}/0`,
    stop: () => new Promise((resolve) => {
      child.once('exit', resolve)
      child.kill('SIGKILL')
    })
  }
}
