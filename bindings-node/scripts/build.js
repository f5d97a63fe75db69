'use strict'
// Builds the native addon from source with cargo (run by `npm install` and
// before `npm pack`). Needs only Node and the Rust toolchain: the loader
// (native.js) and its types (native.d.ts) are generated ahead of time by the
// napi CLI (`npm run generate`) and committed.

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const packageDir = path.resolve(__dirname, '..')

/** The file name native.js loads on this platform, e.g. tidings.linux-x64-gnu.node. */
function addonName () {
  const { platform, arch } = process
  if (platform === 'linux') {
    const musl = !process.report?.getReport?.().header?.glibcVersionRuntime
    return `tidings.linux-${arch}-${musl ? 'musl' : 'gnu'}.node`
  }
  if (platform === 'win32') return `tidings.win32-${arch}-msvc.node`
  return `tidings.${platform}-${arch}.node`
}

function builtLibrary (targetDir) {
  const release = path.join(targetDir, 'release')
  const candidates = { linux: 'libtidings_node.so', darwin: 'libtidings_node.dylib', win32: 'tidings_node.dll' }
  return path.join(release, candidates[process.platform] ?? 'libtidings_node.so')
}

function main () {
  const destination = path.join(packageDir, addonName())
  const manifest = path.join(packageDir, 'Cargo.toml')
  const workspace = fs.existsSync(path.join(packageDir, '..', 'core', 'Cargo.toml'))
  if (!fs.existsSync(manifest) || !workspace) {
    if (fs.existsSync(destination)) return // a packed tarball with its prebuilt addon
    throw new Error(`tidings: no Rust sources to build and no prebuilt ${path.basename(destination)}`)
  }
  const cargo = process.env.CARGO || 'cargo'
  const run = (args) => execFileSync(cargo, args, { cwd: packageDir, stdio: ['ignore', 'pipe', 'inherit'] }).toString()
  try {
    run(['--version'])
  } catch {
    throw new Error('tidings: building the native addon needs the Rust toolchain (cargo) on PATH')
  }
  execFileSync(cargo, ['build', '--release', '--manifest-path', manifest, '-p', 'tidings-node'], {
    cwd: packageDir,
    stdio: 'inherit'
  })
  const metadata = JSON.parse(run(['metadata', '--format-version', '1', '--no-deps', '--manifest-path', manifest]))
  fs.copyFileSync(builtLibrary(metadata.target_directory), destination)
}

try {
  main()
} catch (error) {
  console.error(error.message)
  process.exit(1)
}
