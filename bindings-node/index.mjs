// ESM entry point: the same objects as the CommonJS one.
import tidings from './index.js'

export const { Server, Channel, HTTPError, version } = tidings
export default tidings
