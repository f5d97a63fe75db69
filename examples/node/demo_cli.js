'use strict'
// What every Node demo shares: its flags and running until Ctrl-C.

const path = require('node:path')
const { parseArgs } = require('node:util')

const EXAMPLES = path.resolve(__dirname, '..')
const PAGES = path.join(EXAMPLES, 'pages')

/** Parses --host, --port and the demo's own numeric flags (name → default). */
function parse (description, numbers = {}) {
  const options = { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '8000' }, help: { type: 'boolean' } }
  for (const [name, fallback] of Object.entries(numbers)) options[name] = { type: 'string', default: String(fallback) }
  const { values } = parseArgs({ options })
  if (values.help) {
    console.log(`${description}\n\nflags: --host --port ${Object.keys(numbers).map((n) => `--${n}`).join(' ')}`)
    process.exit(0)
  }
  const args = { host: values.host, port: Number(values.port) }
  for (const name of Object.keys(numbers)) args[name] = Number(values[name])
  return args
}

/** Starts `server`, prints the URL to open, and stops cleanly on Ctrl-C. */
async function serve (name, server, onStarted = () => {}) {
  await server.start()
  console.log(`${name}: open ${server.url}/`)
  const stopped = onStarted() || (() => {})
  const stop = async () => {
    stopped()
    await server.stop()
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000))

module.exports = { EXAMPLES, PAGES, parse, serve, sleep }
