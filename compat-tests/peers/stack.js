// Builds the byte stack Flume uses under Avro's Netty framing, from Node's own net/tls/zlib:
// plain, deflate (zlib RFC 1950, one stream per direction, sync flush per frame), TLS, or both
// in either order (Flume >= 1.10: zlib outside TLS; Flume <= 1.9: TLS outside zlib).
'use strict';
const stream = require('stream');
const zlib = require('zlib');

function zlibPair(raw) {
  const deflater = zlib.createDeflate({ level: 6, flush: zlib.constants.Z_SYNC_FLUSH });
  deflater.pipe(raw);
  const inflater = raw.pipe(zlib.createInflate({ finishFlush: zlib.constants.Z_SYNC_FLUSH }));
  return { readable: inflater, writable: deflater };
}

function duplexOf(pair) {
  return stream.Duplex.from({ readable: pair.readable, writable: pair.writable });
}

module.exports = { zlibPair, duplexOf };
