import assert from 'node:assert/strict'
import fs from 'node:fs'
import { test } from 'node:test'
import { chromium } from 'playwright-core'
import { demo } from './helpers.mjs'

const CHROMIUM = process.env.TIDINGS_CHROMIUM ?? '/usr/bin/chromium'

test('counter page in headless Chromium: 20 values, the end, then the stream is closed', async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (bash .ci/run does)`)
  const running = await demo('counter', '--delay', '0.01')
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-proxy-server', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run']
  })
  try {
    const page = await browser.newPage()
    await page.goto(`${running.url}/`)
    await page.waitForFunction(() => document.querySelector('#status').textContent === 'closed')
    const items = await page.locator('#messages li').allTextContents()
    assert.deepEqual(items, [...Array.from({ length: 20 }, (_, i) => `Counter value ${i + 1}`), 'End of the stream'])
    assert.equal(await page.evaluate('source.readyState'), 2)
  } finally {
    await browser.close()
    await running.stop()
  }
})
