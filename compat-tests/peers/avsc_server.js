#!/usr/bin/env node
// avsc@5.7.9 as a stateful Netty-framed Avro *server* speaking Flume's AvroSourceProtocol: the
// downstream for sluicegate's Avro sink tests. Usage:
//   node avsc_server.js --protocol FILE [--port 0] [--deflate] [--tls --cert F --key F]
//        [--order zlib-outside|tls-outside] [--fail-first N] [--status OK|FAILED]
// Prints {"listening": port} first, then one JSON line per received event
// ({"seq": header seq, "headers": {...}, "body": base64}) and per call ({"call": n, "events": k, "answer": "OK"}).
// Exits when stdin closes.
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

const deflate = flag('deflate');
const useTls = flag('tls');
const order = opt('order', 'zlib-outside');
let failFirst = Number(opt('fail-first', '0'));
const status = opt('status', 'OK');
const svc = avro.Service.forProtocol(JSON.parse(fs.readFileSync(opt('protocol'), 'utf8')));
const tlsCtx = useTls ? { cert: fs.readFileSync(opt('cert')), key: fs.readFileSync(opt('key')) } : null;

let calls = 0;
function answer(events, cb) {
  calls += 1;
  let a = status;
  if (failFirst > 0) { failFirst -= 1; a = 'FAILED'; }
  if (a === 'OK') {
    for (const e of events) {
      console.log(JSON.stringify({ seq: e.headers.seq, headers: e.headers, body: e.body.toString('base64') }));
    }
  }
  console.log(JSON.stringify({ call: calls, events: events.length, answer: a }));
  cb(null, a);
}
const server = svc.createServer()
  .onAppendBatch((events, cb) => answer(events, cb))
  .onAppend((event, cb) => answer([event], cb));

function attach(raw) {
  raw.on('error', () => {});
  if (!useTls && !deflate) return server.createChannel(raw);
  if (!useTls) return server.createChannel(zlibPair(raw));
  if (!deflate) {
    const t = new tls.TLSSocket(raw, Object.assign({ isServer: true }, tlsCtx));
    t.on('error', () => {});
    return server.createChannel(t);
  }
  if (order === 'zlib-outside') {
    const t = new tls.TLSSocket(duplexOf(zlibPair(raw)), Object.assign({ isServer: true }, tlsCtx));
    t.on('error', () => {});
    return server.createChannel(t);
  }
  const t = new tls.TLSSocket(raw, Object.assign({ isServer: true }, tlsCtx));
  t.on('error', () => {});
  server.createChannel(zlibPair(t));
}

const listener = net.createServer(attach).listen(Number(opt('port', '0')), '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: listener.address().port }));
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
