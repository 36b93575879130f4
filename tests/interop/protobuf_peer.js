// The reference protobuf codecs for tests/protobuf_diff.rs: pomelo-protobuf 0.4.0 (the codec of
// the official pomelo clients: "pomelo" is its Node build, "browser" its browser build
// lib/client/protobuf.js, which writes varint fields with wire type 2 and characters outside
// the BMP as CESU-8) and pinus-protobuf 1.7.4 (what pinus servers run), driven over JSON lines
// on stdin/stdout. One request per line, one reply per line, in order:
//
//   {"op":"init","server":"<serverProtos.json text>","client":"<clientProtos.json text>"}
//     -> {"ok":true,"pomelo":{"server":"<JSON.stringify(parsed)>","client":"…"},
//         "pinus":{"server":"…","client":"…","version":"…","handshake":"…"}}
//   {"op":"encode","codec":"pomelo"|"browser"|"pinus","side":"server"|"client","route":"…","value":{…}}
//     -> {"ok":true,"hex":"0801…"|null}   (null: the codec returned null, e.g. an empty message)
//   {"op":"decode","codec":…,"side":…,"route":"…","hex":"…"}
//     -> {"ok":true,"value":{…}}           (JSON.stringify: NaN/Infinity become null)
//   any failure (a thrown error) -> {"ok":false,"error":"…"}
//
// The source texts are parsed with JSON.parse, so key order is JavaScript's, as pinus loads
// them. The version is pinus's: base64(md5(JSON.stringify(client) + JSON.stringify(server))).
'use strict';

const crypto = require('crypto');
const readline = require('readline');
const pomelo = require('pomelo-protobuf');
const browser = require('pomelo-protobuf/lib/client/protobuf.js');
const { Protobuf: Pinus } = require('pinus-protobuf');

let parsed = null; // {pomelo: {server, client}, pinus: {server, client}}
let pinusCodecs = null; // {server: Pinus, client: Pinus}

function codecFor(codec, side) {
  if (!parsed) throw new Error('init first');
  if (codec === 'pomelo') {
    // pomelo-protobuf's Node build is a module-level singleton: point it at the side's protos.
    pomelo.setEncoderProtos(parsed.pomelo[side]);
    pomelo.setDecoderProtos(parsed.pomelo[side]);
    return pomelo;
  }
  if (codec === 'browser') {
    browser.init({ encoderProtos: parsed.pomelo[side], decoderProtos: parsed.pomelo[side] });
    return browser;
  }
  if (codec === 'pinus') return pinusCodecs[side];
  throw new Error('unknown codec ' + codec);
}

function handle(req) {
  switch (req.op) {
    case 'init': {
      const server = JSON.parse(req.server);
      const client = JSON.parse(req.client);
      parsed = {
        pomelo: { server: pomelo.parse(server), client: pomelo.parse(client) },
        pinus: { server: Pinus.parse(server), client: Pinus.parse(client) },
      };
      pinusCodecs = {
        server: new Pinus({ encoderProtos: parsed.pinus.server, decoderProtos: parsed.pinus.server }),
        client: new Pinus({ encoderProtos: parsed.pinus.client, decoderProtos: parsed.pinus.client }),
      };
      const s = JSON.stringify(parsed.pinus.server);
      const c = JSON.stringify(parsed.pinus.client);
      const version = crypto.createHash('md5').update(c + s).digest('base64');
      return {
        ok: true,
        pomelo: {
          server: JSON.stringify(parsed.pomelo.server),
          client: JSON.stringify(parsed.pomelo.client),
        },
        pinus: {
          server: s,
          client: c,
          version,
          handshake: JSON.stringify({ server: parsed.pinus.server, client: parsed.pinus.client, version }),
        },
      };
    }
    case 'encode': {
      const buffer = codecFor(req.codec, req.side).encode(req.route, req.value);
      return { ok: true, hex: buffer ? Buffer.from(buffer).toString('hex') : null };
    }
    case 'decode': {
      const value = codecFor(req.codec, req.side).decode(req.route, Buffer.from(req.hex, 'hex'));
      return { ok: true, value };
    }
    default:
      throw new Error('unknown op ' + req.op);
  }
}

// The codecs log with console.warn/error/log on bad input: keep stdout for replies only.
console.log = console.warn = console.error = () => {};
const out = process.stdout;
readline.createInterface({ input: process.stdin, terminal: false }).on('line', (line) => {
  let reply;
  try {
    reply = handle(JSON.parse(line));
  } catch (e) {
    reply = { ok: false, error: String(e && e.stack ? e.stack.split('\n')[0] : e) };
  }
  out.write(JSON.stringify(reply) + '\n');
});
