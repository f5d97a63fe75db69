// The hand-written index.d.ts must describe what index.js exports: names,
// and (through test/types/usage.ts, compiled and run) signatures and the
// shapes of what calls return.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import tidings from '../index.js'
import * as esm from '../index.mjs'
import { ROOT } from './helpers.mjs'

test('CommonJS and ESM entry points export the same API', () => {
  assert.deepEqual(Object.keys(tidings).sort(), ['Channel', 'HTTPError', 'Server', 'version'])
  for (const name of Object.keys(tidings)) assert.equal(esm[name], tidings[name], name)
  assert.equal(tidings.version, JSON.parse(fs.readFileSync(path.join(ROOT, 'bindings-node', 'package.json'))).version)
})

test('index.d.ts declares every runtime export and Server method', () => {
  const declarations = fs.readFileSync(path.join(ROOT, 'bindings-node', 'index.d.ts'), 'utf8')
  for (const name of Object.keys(tidings)) assert.match(declarations, new RegExp(`export declare (class|const) ${name}\\b`))
  const methods = Object.getOwnPropertyNames(tidings.Server.prototype).filter((m) => m !== 'constructor' && !m.startsWith('_'))
  for (const method of methods) assert.match(declarations, new RegExp(`\\n  (readonly )?${method}\\b`), `Server.${method}`)
})

const tsc = path.join(ROOT, 'bindings-node', 'node_modules', 'typescript', 'bin', 'tsc')

test('the typed example compiles with tsc --noEmit --strict', () => {
  execFileSync(process.execPath, [tsc, '-p', path.join(ROOT, 'examples', 'node', 'tsconfig.json')], { stdio: 'inherit' })
})

test('every signature in index.d.ts compiles as used, and the runtime has what it declares', () => {
  const project = path.join(ROOT, 'bindings-node', 'test', 'types')
  fs.rmSync(path.join(project, '.build'), { recursive: true, force: true })
  execFileSync(process.execPath, [tsc, '-p', path.join(project, 'tsconfig.json')], { stdio: 'inherit' })
  const output = execFileSync(process.execPath, [path.join(project, '.build', 'usage.js')], { encoding: 'utf8' })
  assert.match(output, /types match the runtime/)
})
