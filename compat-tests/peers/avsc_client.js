#!/usr/bin/env node
// avsc@5.7.9 (an independent Avro implementation, stateful Netty-framed client) pushing Flume
// events into an Avro source. Usage:
//   node avsc_client.js --port P --protocol FILE [--calls N] [--batch M] [--deflate] [--tls]
//        [--order zlib-outside|tls-outside] [--ca FILE] [--lines FILE]
// With --lines, the bodies are the file's lines (UTF-8, in order, `--batch` per call, the last
// call possibly shorter) and --calls is ignored.
// Prints one JSON line per call ({"call":i,"status":"OK"} or {"call":i,"error":"..."}) and a
// summary line; exits 0 when every call answered (whatever the status).
'use strict';
const avro = require('avsc');
const fs = require('fs');
const net = require('net');
const tls = require('tls');
const { zlibPair, duplexOf } = require('./stack');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf('--' + name);
  return i >= 0 ? args[i + 1] : dflt;
};
const flag = (name) => args.includes('--' + name);

const port = Number(opt('port'));
const batch = Number(opt('batch', '5'));
const linesFile = opt('lines');
const lines = linesFile ? fs.readFileSync(linesFile, 'utf8').split('\n') : null;
if (lines && lines[lines.length - 1] === '') lines.pop();
const calls = lines ? Math.ceil(lines.length / batch) : Number(opt('calls', '3'));
const deflate = flag('deflate');
const useTls = flag('tls');
const order = opt('order', 'zlib-outside');
const ca = opt('ca');
const bodySize = Number(opt('body-size', '0'));
const svc = avro.Service.forProtocol(JSON.parse(fs.readFileSync(opt('protocol'), 'utf8')));

function tlsOpts(extra) {
  return Object.assign({ servername: 'localhost', rejectUnauthorized: !!ca, ca: ca ? fs.readFileSync(ca) : undefined }, extra);
}

// Set once every call is answered: socket errors while tearing down (the server closing its
// side first, e.g. an EPIPE on the TLS close_notify) are then not failures.
let finished = false;

function onStreamError(e) {
  if (finished) return;
  console.log(JSON.stringify({ fatal: String(e) }));
  process.exit(3);
}

// Tearing down the layered streams (e.g. the Duplex.from wrapper under TLS) can emit errors
// such as AbortError once everything is done; they are not failures of the calls.
process.on('uncaughtException', (e) => {
  if (finished) process.exit(0);
  onStreamError(e);
});

function connect(cb) {
  const raw = net.connect(port, '127.0.0.1');
  raw.on('error', onStreamError);
  raw.once('connect', () => {
    if (!useTls && !deflate) return cb(raw);
    if (!useTls) return cb(zlibPair(raw));
    if (!deflate) {
      const t = tls.connect(tlsOpts({ socket: raw }));
      return t.once('secureConnect', () => cb(t));
    }
    if (order === 'zlib-outside') {
      const inner = duplexOf(zlibPair(raw));
      inner.on('error', onStreamError);
      const t = tls.connect(tlsOpts({ socket: inner }));
      return t.once('secureConnect', () => cb(t));
    }
    const t = tls.connect(tlsOpts({ socket: raw }));
    t.once('secureConnect', () => cb(zlibPair(t)));
  });
}

function body(seq) {
  if (lines) return Buffer.from(lines[seq], 'utf8');
  const base = 'avsc-' + seq;
  return Buffer.from(bodySize > base.length ? base + 'x'.repeat(bodySize - base.length) : base);
}

connect((transport) => {
  const client = svc.createClient({ buffering: true, transport, timeout: 10000 });
  let seq = 0;
  let call = 0;
  const next = () => {
    if (call === calls) {
      finished = true;
      console.log(JSON.stringify({ summary: true, events: seq }));
      client.destroyChannels({ noWait: true });
      setTimeout(() => process.exit(0), 50);
      return;
    }
    const done = (err, status) => {
      console.log(JSON.stringify(err ? { call, error: String(err.message || err) } : { call, status }));
      call += 1;
      next();
    };
    if (batch === 1) {
      const s = seq++;
      client.append({ headers: { seq: String(s), peer: 'avsc' }, body: body(s) }, done);
    } else {
      const events = [];
      const n = lines ? Math.min(batch, lines.length - seq) : batch;
      for (let i = 0; i < n; i++) {
        const s = seq++;
        events.push({ headers: { seq: String(s), peer: 'avsc' }, body: body(s) });
      }
      client.appendBatch(events, done);
    }
  };
  next();
});
setTimeout(() => { console.log(JSON.stringify({ fatal: 'timeout' })); process.exit(4); }, 60000).unref();
