#!/usr/bin/env node
// Interop test: codecs nobody in this repository wrote, talking to the gatehouse example gate.
//
//   node interop.js HOST PORT [--ca FILE] [--heartbeat SECONDS] [--timeout MS] [--only CASE,CASE…]
//
// Cases (run one after the other; the gate's `blast` pushes to every bound uid):
//   tcp       raw TCP; 4-byte package framing by pinus-protocol@1.7.4 Package.encode/decode
//   ws        WebSocket (ws 8), one package per binary frame, same codec
//   ws-batch  WebSocket, several packages in one frame (pinus disconnects; gatehouse must not)
//   jsclient  the official browser client pomelo-jsclient-websocket@0.1.1 + pomelo-protocol@0.1.6,
//             run in Node through the window/WebSocket shim (spec §6)
// TLS cases, on the SAME port as the plain ones (the gate serves both; --ca is the test CA that
// signed its certificate, see examples/test_ca.rs). Every TLS client verifies the server
// (`ca:` the test CA only, `rejectUnauthorized: true`) and connects to the IP address HOST:
//   tls           Node `tls.connect` (TLS 1.3 negotiated) + the tcp case's pinus-protocol steps;
//                 the ClientHello Node wrote is captured and checked to carry NO server_name
//                 extension (Node sends no SNI for an IP address; the server must not need it)
//   tls12         the same with maxVersion 'TLSv1.2' (libpomelo2, the official C client, is
//                 TLS 1.2 only)
//   tls-sni       servername 'localhost': SNI is sent and the certificate is verified against
//                 its DNS name; then the checks that verification is real: a wrong servername
//                 and a client without the test CA are both refused by the client
//   tls-badpeer   while one peer sits on half a ClientHello and another sends a 0x16 byte
//                 followed by garbage (closed by the server), a TLS client is served normally
//   wss           ws 8 over wss://HOST:PORT/, the ws case's steps
//   jsclient-wss  the official client over wss. pomelo-jsclient-websocket@0.1.1 hard-codes
//                 'ws://' + host + ':' + port (no option for wss), so the WebSocket the shim
//                 gives it REWRITES that URL to wss:// and adds the CA; the case checks the
//                 client asked for ws:// and the socket it got is TLS. Nothing else differs.
//
// Prints one line per check ("ok - …" / "FAIL - …") and finally exactly
// "interop: N passed, M failed". Exits 0 only if nothing failed. A failed step aborts its case
// (the following steps depend on it); the other cases still run.

'use strict';

const fs = require('fs');
const net = require('net');
const tls = require('tls');
const { Duplex } = require('stream');
const crypto = require('crypto');
const WebSocket = require('ws');
const { Package, Message, Protocol } = require('pinus-protocol');

// ---------------------------------------------------------------- arguments

// The official client keeps one global client per module instance: its cases run last.
const ALL_CASES = ['tcp', 'ws', 'ws-batch', 'tls', 'tls12', 'tls-sni', 'tls-badpeer', 'wss', 'jsclient', 'jsclient-wss'];
const TLS_CASES = ['tls', 'tls12', 'tls-sni', 'tls-badpeer', 'wss', 'jsclient-wss'];

function usage(msg) {
    if (msg) console.error(`interop: ${msg}`);
    console.error(`usage: node interop.js HOST PORT [--ca FILE] [--heartbeat SECONDS] [--timeout MS] [--only ${ALL_CASES.join(',')}]`);
    console.error('       the TLS cases (all but tcp, ws, ws-batch, jsclient) need --ca');
    process.exit(2);
}

const argv = process.argv.slice(2);
const positional = [];
const opts = { heartbeat: null, timeout: 3000, only: null, ca: null };
for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--heartbeat') opts.heartbeat = Number(argv[++i]);
    else if (a === '--timeout') opts.timeout = Number(argv[++i]);
    else if (a === '--only') opts.only = String(argv[++i]).split(',');
    else if (a === '--ca') opts.ca = String(argv[++i]);
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else positional.push(a);
}
if (positional.length !== 2) usage('expected HOST and PORT');
const HOST = positional[0];
const PORT = Number(positional[1]);
if (!Number.isInteger(PORT) || PORT <= 0 || PORT > 65535) usage(`bad port ${positional[1]}`);
if (opts.heartbeat !== null && !(opts.heartbeat > 0)) usage('--heartbeat must be a positive number of seconds');
if (!(opts.timeout > 0)) usage('--timeout must be positive');
const STEP_MS = opts.timeout;
for (const c of opts.only || []) if (!ALL_CASES.includes(c)) usage(`unknown case ${c}`);
const selected = ALL_CASES.filter((c) => !opts.only || opts.only.includes(c));
// A TLS case without the CA fails here, loudly: it is never skipped.
const needCa = selected.filter((c) => TLS_CASES.includes(c));
if (needCa.length && !opts.ca) usage(`--ca FILE is required for the TLS cases (${needCa.join(', ')}); pass --only tcp,ws,ws-batch,jsclient for a plain-only run`);
let CA = null;
if (opts.ca) {
    try {
        CA = fs.readFileSync(opts.ca);
    } catch (err) {
        usage(`cannot read --ca ${opts.ca}: ${err.message}`);
    }
    if (!/-----BEGIN CERTIFICATE-----/.test(CA.toString('latin1'))) usage(`--ca ${opts.ca} holds no PEM certificate`);
}

// ---------------------------------------------------------------- reporting

// Our own output goes straight to stdout, so the official client's console chatter can be
// silenced without losing it.
function say(line) {
    process.stdout.write(`${line}\n`);
}

let passed = 0;
let failed = 0;
const failures = [];
let currentStep = null; // {label, reject} of the step running now, for uncaught errors

class CaseAbort extends Error {}

function hex(buf) {
    if (!buf) return '(none)';
    const b = Buffer.from(buf);
    const s = b.subarray(0, 96).toString('hex').replace(/(..)/g, '$1 ').trim();
    return b.length > 96 ? `${s} … (${b.length} bytes)` : s;
}

function text(buf) {
    return buf ? Buffer.from(buf).toString('utf8') : '';
}

function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms in ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Runs one check. On failure prints it, counts it and aborts the case.
async function step(caseName, name, fn, ms = STEP_MS) {
    const label = `[${caseName}] ${name}`;
    let detail;
    try {
        const uncaught = new Promise((_, reject) => { currentStep = { label, reject }; });
        detail = await withTimeout(Promise.race([Promise.resolve().then(fn), uncaught]), ms, `step "${name}"`);
    } catch (err) {
        failed++;
        const msg = err && err.message ? err.message : String(err);
        failures.push(`${label}: ${msg}`);
        say(`FAIL - ${label}: ${msg}`);
        throw new CaseAbort(label);
    } finally {
        currentStep = null;
    }
    passed++;
    say(`ok   - ${label}${detail ? ` (${detail})` : ''}`);
    return detail;
}

process.on('uncaughtException', (err) => {
    if (currentStep) currentStep.reject(new Error(`uncaught exception: ${err && err.stack || err}`));
    else {
        say(`FAIL - uncaught exception outside any step: ${err && err.stack || err}`);
        failed++;
    }
});

function assert(cond, msg) {
    if (!cond) throw new Error(msg);
}

// ---------------------------------------------------------------- codec helpers (pinus-protocol)

const EMPTY = Buffer.alloc(0);
const TYPE_NAMES = { 1: 'HANDSHAKE', 2: 'HANDSHAKE_ACK', 3: 'HEARTBEAT', 4: 'DATA', 5: 'KICK' };
const MSG_NAMES = { 0: 'REQUEST', 1: 'NOTIFY', 2: 'RESPONSE', 3: 'PUSH' };

function pkg(type, body) {
    return Package.encode(type, body || undefined);
}

function jsonBody(obj) {
    return Protocol.strencode(JSON.stringify(obj));
}

function request(id, route, body) {
    return pkg(Package.TYPE_DATA, Message.encode(id, Message.TYPE_REQUEST, 0, route, jsonBody(body)));
}

function describe(p) {
    const name = TYPE_NAMES[p.type] || `type ${p.type}`;
    if (p.type === Package.TYPE_DATA && p.msg) {
        const m = p.msg;
        return `DATA ${MSG_NAMES[m.type] || m.type} id=${m.id} route=${JSON.stringify(m.route)} body=${text(m.body)} [hex ${hex(p.raw)}]`;
    }
    return `${name} body=${JSON.stringify(text(p.body))} [hex ${hex(p.raw)}]`;
}

// Splits one received byte run (a whole WS message, or one TCP-framed package) with
// Package.decode, and checks that pinus-protocol re-encodes exactly the bytes received.
function decodePackages(bytes) {
    const decoded = Package.decode(bytes);
    const list = Array.isArray(decoded) ? decoded : [decoded];
    const out = [];
    for (const d of list) {
        if (!TYPE_NAMES[d.type] || !('body' in d)) {
            throw new Error(`Package.decode rejected server bytes (type ${d.type}): ${hex(bytes)}`);
        }
        const body = d.body || EMPTY;
        const raw = Package.encode(d.type, d.body || undefined);
        const p = { type: d.type, body, raw };
        if (d.type === Package.TYPE_DATA) {
            p.msg = Message.decode(body);
            p.msg.body = p.msg.body || EMPTY;
        }
        out.push(p);
    }
    const reencoded = Buffer.concat(out.map((p) => p.raw));
    if (!reencoded.equals(Buffer.from(bytes))) {
        throw new Error(`server bytes do not round-trip through pinus-protocol: got ${hex(bytes)}, re-encoded ${hex(reencoded)}`);
    }
    return out;
}

// ---------------------------------------------------------------- connections

// A queue of received packages plus the close event, read one step at a time.
class Inbound {
    constructor() {
        this.queue = [];
        this.waiter = null;
        this.closed = null; // {how, …} once the connection ended
        this.error = null;
        this.pushes = []; // every PUSH seen, in order
    }
    deliver(p) {
        if (p.type === Package.TYPE_DATA && p.msg && p.msg.type === Message.TYPE_PUSH) this.pushes.push(p);
        this.queue.push(p);
        this.wake();
    }
    fail(err) {
        this.error = err;
        this.wake();
    }
    end(info) {
        if (!this.closed) this.closed = info;
        this.wake();
    }
    wake() {
        if (this.waiter) {
            const w = this.waiter;
            this.waiter = null;
            w();
        }
    }
    // The next package; rejects if the connection ended (or broke) with nothing queued.
    async next(what) {
        for (;;) {
            if (this.error) throw this.error;
            if (this.queue.length) return this.queue.shift();
            if (this.closed) throw new Error(`connection closed (${JSON.stringify(this.closed)}) while waiting for ${what}`);
            await new Promise((resolve) => { this.waiter = resolve; });
        }
    }
    // Resolves with the close info once the connection has ended.
    async closedInfo() {
        for (;;) {
            if (this.closed) return this.closed;
            if (this.error) throw this.error;
            if (this.queue.length) throw new Error(`expected the connection to close, got ${describe(this.queue.shift())}`);
            await new Promise((resolve) => { this.waiter = resolve; });
        }
    }
}

// pinus's TCP framing on a byte stream (a plain socket, or the plaintext side of a TLS one).
function readPackages(socket, inbound, how) {
    let buf = EMPTY;
    socket.on('data', (chunk) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        // 4-byte head: type, 24-bit big-endian body length; then hand the whole package to
        // pinus-protocol's Package.decode.
        while (buf.length >= 4) {
            const len = (buf[1] << 16) | (buf[2] << 8) | buf[3];
            if (buf.length < 4 + len) break;
            const one = buf.subarray(0, 4 + len);
            buf = buf.subarray(4 + len);
            try {
                for (const p of decodePackages(one)) inbound.deliver(p);
            } catch (err) {
                inbound.fail(err);
            }
        }
    });
    socket.on('error', (err) => inbound.end({ how: `${how} error`, error: err.message }));
    socket.on('close', (hadError) => {
        inbound.end({ how: `${how} close`, hadError, trailingBytes: buf.length ? hex(buf) : undefined });
    });
}

function openTcp() {
    const inbound = new Inbound();
    const socket = net.connect({ host: HOST, port: PORT });
    socket.setNoDelay(true);
    readPackages(socket, inbound, 'tcp');
    const ready = new Promise((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
    });
    return {
        kind: 'tcp',
        framing: 'tcp',
        label: `tcp ${HOST}:${PORT}`,
        inbound,
        ready,
        send: (bytes) => socket.write(bytes),
        close: () => socket.destroy(),
    };
}

// A TCP socket to HOST:PORT seen through a Duplex that records the first bytes written to it,
// so the ClientHello Node's TLS stack sends can be inspected (a net.Socket handed to
// tls.connect would be written to natively, out of JavaScript's sight).
function tappedSocket(sent) {
    const raw = net.connect({ host: HOST, port: PORT });
    raw.setNoDelay(true);
    const duplex = new Duplex({
        write(chunk, _enc, cb) {
            if (sent.bytes.length < 64 * 1024) sent.bytes = Buffer.concat([sent.bytes, chunk]);
            raw.write(chunk, cb);
        },
        final(cb) {
            raw.end();
            cb();
        },
        read() {
            raw.resume();
        },
        destroy(err, cb) {
            raw.destroy();
            cb(err);
        },
    });
    raw.on('data', (chunk) => {
        if (!duplex.push(chunk)) raw.pause();
    });
    raw.on('end', () => duplex.push(null));
    raw.on('error', (err) => duplex.destroy(err));
    raw.on('close', () => duplex.destroy());
    return duplex;
}

// The extensions of the first TLS record in `bytes` if it is a whole ClientHello:
// { sni: hostname or null, types: [extension type, …], versions: [supported_versions, …] }. Bounds-checked; throws on anything else.
function parseClientHello(bytes) {
    const b = Buffer.from(bytes);
    const need = (n, what) => { if (b.length < n) throw new Error(`ClientHello cut short in ${what} (${b.length} bytes: ${hex(b)})`); };
    need(5, 'record header');
    if (b[0] !== 0x16) throw new Error(`first record is not a handshake (0x16): ${hex(b)}`);
    const end = 5 + b.readUInt16BE(3);
    need(end, 'record');
    let i = 5;
    need(i + 4, 'handshake header');
    if (b[i] !== 0x01) throw new Error(`first handshake message is type ${b[i]}, not ClientHello (1)`);
    i += 4 + 2 + 32; // handshake header, legacy_version, random
    need(i + 1, 'session id'); i += 1 + b[i];
    need(i + 2, 'cipher suites'); i += 2 + b.readUInt16BE(i);
    need(i + 1, 'compression'); i += 1 + b[i];
    need(i + 2, 'extensions length');
    const extEnd = i + 2 + b.readUInt16BE(i);
    i += 2;
    if (extEnd > end) throw new Error('extensions run past the record');
    const types = [];
    const versions = [];
    let sni = null;
    while (i + 4 <= extEnd) {
        const type = b.readUInt16BE(i);
        const len = b.readUInt16BE(i + 2);
        const body = b.subarray(i + 4, i + 4 + len);
        if (i + 4 + len > extEnd) throw new Error(`extension ${type} runs past the extensions`);
        types.push(type);
        // server_name: list length (2), then name type (1, 0 = host_name), length (2), name.
        if (type === 0 && body.length >= 5) sni = body.subarray(5, 5 + body.readUInt16BE(3)).toString('latin1');
        else if (type === 0) sni = '(empty server_name extension)';
        // supported_versions (ClientHello form): list length (1), then 2-byte versions.
        if (type === 43 && body.length >= 1) {
            const listEnd = Math.min(body.length, 1 + body[0]);
            for (let j = 1; j + 2 <= listEnd; j += 2) versions.push(body.readUInt16BE(j));
        }
        i += 4 + len;
    }
    return { sni, types, versions };
}

// pinus-protocol packages over TLS: `tls.connect` on a tapped socket, verifying the server
// against the test CA only. `extra` goes to tls.connect (maxVersion, servername).
function openTls(extra = {}) {
    const inbound = new Inbound();
    const sent = { bytes: EMPTY };
    const socket = tls.connect({
        socket: tappedSocket(sent),
        host: HOST,
        ca: CA,
        rejectUnauthorized: true,
        ...extra,
    });
    readPackages(socket, inbound, 'tls');
    const ready = new Promise((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
    });
    return {
        kind: 'tls',
        framing: 'tcp',
        label: `tls ${HOST}:${PORT}${extra.servername !== undefined ? ` servername ${JSON.stringify(extra.servername)}` : ''}${extra.maxVersion ? ` maxVersion ${extra.maxVersion}` : ''}`,
        inbound,
        ready,
        socket,
        sent,
        send: (bytes) => socket.write(bytes),
        close: () => socket.destroy(),
    };
}

// What a TLS socket negotiated, for the reports.
function tlsSummary(socket) {
    const c = socket.getCipher();
    const k = socket.getEphemeralKeyInfo();
    const kx = k && k.name ? `, key exchange ${k.name}` : '';
    return `${socket.getProtocol()} ${c && c.standardName}${kx}, authorized=${socket.authorized}`;
}

function openWs(secure = false) {
    const inbound = new Inbound();
    const url = `${secure ? 'wss' : 'ws'}://${HOST}:${PORT}/`;
    const ws = secure ? new WebSocket(url, { ca: CA, rejectUnauthorized: true }) : new WebSocket(url);
    ws.on('message', (data, isBinary) => {
        if (!isBinary) {
            inbound.fail(new Error(`server sent a text frame: ${JSON.stringify(String(data))}`));
            return;
        }
        try {
            for (const p of decodePackages(data)) inbound.deliver(p);
        } catch (err) {
            inbound.fail(err);
        }
    });
    ws.on('error', (err) => inbound.end({ how: 'ws error', error: err.message }));
    ws.on('close', (code, reason) => inbound.end({ how: 'ws close', code, reason: String(reason) }));
    const ready = new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
    });
    return {
        kind: 'ws',
        framing: 'ws',
        label: url,
        secure,
        ws,
        inbound,
        ready,
        // One binary frame per call: a caller that wants several packages in one frame
        // concatenates them first.
        send: (bytes) => ws.send(bytes, { binary: true }),
        close: () => ws.terminate(),
    };
}

// ---------------------------------------------------------------- protocol steps

async function expectPackage(conn, type, what) {
    const p = await conn.inbound.next(what);
    assert(p.type === type, `expected ${TYPE_NAMES[type]} (${what}), got ${describe(p)}`);
    return p;
}

// Reads packages until the RESPONSE with this id; PUSHes on the way are recorded, not consumed
// as errors (the Inbound keeps them); anything else fails.
async function expectResponse(conn, id, what) {
    for (;;) {
        const p = await conn.inbound.next(what);
        if (p.type === Package.TYPE_DATA && p.msg.type === Message.TYPE_PUSH) continue;
        assert(p.type === Package.TYPE_DATA && p.msg.type === Message.TYPE_RESPONSE,
            `expected RESPONSE id=${id} (${what}), got ${describe(p)}`);
        assert(p.msg.id === id, `expected RESPONSE id=${id} (${what}), got ${describe(p)}`);
        assert(p.msg.compressRoute === 0 && p.raw[4] === 0x04, `RESPONSE flag byte should be 0x04, got ${hex(p.raw)}`);
        let body;
        try {
            body = JSON.parse(text(p.msg.body));
        } catch (err) {
            throw new Error(`RESPONSE id=${id} body is not JSON: ${hex(p.msg.body)}`);
        }
        return { body, p };
    }
}

async function handshake(caseName, conn, sysType) {
    await step(caseName, 'handshake → code 200 with sys.heartbeat', async () => {
        conn.send(pkg(Package.TYPE_HANDSHAKE, jsonBody({
            sys: { type: sysType, version: '0.0.1' },
            user: { client: 'gatehouse-interop', case: caseName },
        })));
        const p = await expectPackage(conn, Package.TYPE_HANDSHAKE, 'handshake reply');
        let reply;
        try {
            reply = JSON.parse(text(p.body));
        } catch (err) {
            throw new Error(`handshake reply is not JSON: ${hex(p.raw)}`);
        }
        assert(reply.code === 200, `handshake code ${reply.code}, expected 200: ${text(p.body)}`);
        assert(reply.sys && typeof reply.sys === 'object', `handshake reply without sys: ${text(p.body)}`);
        const hb = reply.sys.heartbeat;
        if (opts.heartbeat !== null) {
            assert(hb === opts.heartbeat, `sys.heartbeat ${JSON.stringify(hb)}, expected ${opts.heartbeat}: ${text(p.body)}`);
        } else {
            assert(typeof hb === 'number' && hb > 0, `sys.heartbeat missing or not positive: ${text(p.body)}`);
        }
        return text(p.body);
    });
    await step(caseName, 'ACK → server HEARTBEAT', async () => {
        conn.send(pkg(Package.TYPE_HANDSHAKE_ACK));
        const p = await expectPackage(conn, Package.TYPE_HEARTBEAT, 'the heartbeat that follows the ACK');
        assert(p.body.length === 0, `HEARTBEAT with a body: ${hex(p.raw)}`);
        return hex(p.raw);
    });
}

async function entry(caseName, conn, id, uid) {
    await step(caseName, `request #${id} connector.entryHandler.entry {uid}`, async () => {
        conn.send(request(id, 'connector.entryHandler.entry', { uid }));
        const { body } = await expectResponse(conn, id, 'entry response');
        assert(body.code === 200 && body.uid === uid, `entry reply ${JSON.stringify(body)}, expected {"code":200,"uid":"${uid}"}`);
        return JSON.stringify(body);
    });
}

async function echo(caseName, conn, id, t) {
    await step(caseName, `request #${id} connector.entryHandler.echo {t}`, async () => {
        conn.send(request(id, 'connector.entryHandler.echo', { t }));
        const { body } = await expectResponse(conn, id, 'echo response');
        assert(body.code === 200 && JSON.stringify(body.t) === JSON.stringify(t),
            `echo reply ${JSON.stringify(body)}, expected t=${JSON.stringify(t)}`);
        return JSON.stringify(body);
    });
}

async function blast(caseName, conn, id) {
    const before = conn.inbound.pushes.length;
    await step(caseName, `request #${id} connector.entryHandler.blast {m:3,size:8} → response`, async () => {
        conn.send(request(id, 'connector.entryHandler.blast', { m: 3, size: 8 }));
        const { body } = await expectResponse(conn, id, 'blast response');
        assert(body.code === 200 && body.m === 3 && body.uids >= 1, `blast reply ${JSON.stringify(body)}, expected code 200, m 3, uids ≥ 1`);
        return JSON.stringify(body);
    });
    await step(caseName, 'then 3 PUSHes on onPush with i = 0, 1, 2', async () => {
        while (conn.inbound.pushes.length - before < 3) {
            const p = await conn.inbound.next(`push ${conn.inbound.pushes.length - before + 1} of 3`);
            if (p.type === Package.TYPE_DATA && p.msg.type === Message.TYPE_PUSH) continue; // recorded
            throw new Error(`expected a PUSH, got ${describe(p)}`);
        }
        const got = conn.inbound.pushes.slice(before);
        got.forEach((p, i) => {
            assert(p.msg.route === 'onPush' && p.msg.compressRoute === 0 && p.msg.id === 0,
                `push ${i}: expected route "onPush", got ${describe(p)}`);
            assert(p.raw[4] === 0x06, `push ${i}: flag byte should be 0x06, got ${hex(p.raw)}`);
            const body = JSON.parse(text(p.msg.body));
            assert(body.i === i && body.p === 'x'.repeat(8), `push ${i}: body ${text(p.msg.body)}, expected {"i":${i},"p":"xxxxxxxx"}`);
        });
        return got.map((p) => text(p.msg.body)).join(' ');
    });
}

async function heartbeat(caseName, conn) {
    await step(caseName, 'client HEARTBEAT → server HEARTBEAT', async () => {
        conn.send(pkg(Package.TYPE_HEARTBEAT));
        for (;;) {
            const p = await conn.inbound.next('heartbeat echo');
            if (p.type === Package.TYPE_DATA && p.msg.type === Message.TYPE_PUSH) continue; // counted at the end
            assert(p.type === Package.TYPE_HEARTBEAT && p.body.length === 0, `expected HEARTBEAT, got ${describe(p)}`);
            return hex(p.raw);
        }
    });
}

const KICK_BODY = '{"reason":"bye"}';

async function kick(caseName, conn, id) {
    await step(caseName, `request #${id} connector.entryHandler.kick {reason:"bye"} → response`, async () => {
        conn.send(request(id, 'connector.entryHandler.kick', { reason: 'bye' }));
        const { body } = await expectResponse(conn, id, 'kick response');
        assert(body.code === 200, `kick reply ${JSON.stringify(body)}, expected {"code":200}`);
        return JSON.stringify(body);
    });
    await step(caseName, `then KICK package with body ${KICK_BODY}`, async () => {
        let p;
        do {
            p = await conn.inbound.next('KICK package');
        } while (p.type === Package.TYPE_DATA && p.msg.type === Message.TYPE_PUSH); // counted at the end
        const expected = Package.encode(Package.TYPE_KICK, Protocol.strencode(KICK_BODY));
        assert(p.raw.equals(expected), `expected KICK ${hex(expected)}, got ${describe(p)}`);
        return hex(p.raw);
    });
    await step(caseName, 'then the server closes the connection', async () => {
        const info = await conn.inbound.closedInfo();
        if (conn.kind === 'ws') {
            assert(info.how === 'ws close', `expected a WebSocket close, got ${JSON.stringify(info)}`);
        } else {
            assert(info.how === `${conn.kind} close` && !info.trailingBytes, `expected a clean ${conn.kind} close, got ${JSON.stringify(info)}`);
        }
        return JSON.stringify(info);
    });
}

async function noExtraPushes(caseName, conn, expected) {
    await step(caseName, `exactly ${expected} PUSHes on the whole connection`, async () => {
        const n = conn.inbound.pushes.length;
        assert(n === expected, `${n} PUSHes received: ${conn.inbound.pushes.map(describe).join('; ')}`);
        return `${n}`;
    });
}

async function connect(caseName, conn) {
    await step(caseName, `connect ${conn.label}`, async () => {
        await conn.ready;
        if (conn.kind === 'tls') return tlsSummary(conn.socket);
        if (conn.secure) return tlsSummary(conn.ws._socket);
        return undefined;
    });
}

// ---------------------------------------------------------------- cases

const RUN_ID = `${process.pid}-${Date.now().toString(36)}`;

async function caseStandard(caseName, open, afterConnect) {
    const conn = open();
    try {
        await connect(caseName, conn);
        if (afterConnect) await afterConnect(conn);
        await handshake(caseName, conn, conn.kind === 'ws' ? 'js-websocket' : `pinus-protocol-${conn.kind}`);
        await entry(caseName, conn, 1, `interop-${caseName}-${RUN_ID}`);
        await echo(caseName, conn, 2, `héllo ✓ ${caseName}`);
        let id = 3;
        if (conn.framing === 'tcp') {
            // Stream reassembly on the server: two packages in one write, the second one's
            // head split across writes (over TLS: across TLS records).
            await step(caseName, `requests #3 #4 echo: two packages in one write, #4 split mid-header`, async () => {
                const a = request(3, 'connector.entryHandler.echo', { t: 'three' });
                const b = request(4, 'connector.entryHandler.echo', { t: 'four' });
                conn.send(Buffer.concat([a, b.subarray(0, 2)]));
                await new Promise((r) => setTimeout(r, 50));
                conn.send(b.subarray(2, 9));
                await new Promise((r) => setTimeout(r, 50));
                conn.send(b.subarray(9));
                const r3 = await expectResponse(conn, 3, 'echo #3');
                const r4 = await expectResponse(conn, 4, 'echo #4');
                assert(r3.body.t === 'three' && r4.body.t === 'four', `replies ${JSON.stringify(r3.body)} ${JSON.stringify(r4.body)}`);
                return `${JSON.stringify(r3.body)} ${JSON.stringify(r4.body)}`;
            });
            id = 5;
        }
        await blast(caseName, conn, id++);
        await heartbeat(caseName, conn);
        await kick(caseName, conn, id++);
        await noExtraPushes(caseName, conn, 3);
    } finally {
        conn.close();
    }
}

// The TLS server certificate checks shared by the TLS cases: verified, the protocol wanted, the
// leaf issued by the test CA, and what the ClientHello said about SNI.
async function tlsChecks(caseName, conn, want) {
    await step(caseName, `negotiated ${want.protocol}; the certificate chains to the test CA`, async () => {
        const s = conn.socket;
        assert(s.authorized === true, `not authorized: ${s.authorizationError}`);
        assert(s.getProtocol() === want.protocol, `negotiated ${s.getProtocol()}, expected ${want.protocol}`);
        const leaf = s.getPeerCertificate(true);
        const ca = new crypto.X509Certificate(CA);
        assert(leaf.issuerCertificate && leaf.issuerCertificate.fingerprint256 === ca.fingerprint256,
            `leaf ${leaf.subject && leaf.subject.CN} not issued by the test CA (issuer ${leaf.issuer && leaf.issuer.CN})`);
        return `${tlsSummary(s)}; leaf "${leaf.subject.CN}" (${leaf.subjectaltname}) issued by "${leaf.issuer.CN}"`;
    });
    const what = want.sni === null ? 'the ClientHello carried no server_name (SNI) extension' : `the ClientHello carried SNI ${JSON.stringify(want.sni)}`;
    await step(caseName, what, async () => {
        const hello = parseClientHello(conn.sent.bytes);
        assert(hello.sni === want.sni, `server_name in the ClientHello: ${JSON.stringify(hello.sni)}, expected ${JSON.stringify(want.sni)}`);
        const offered = hello.versions.map((v) => `0x${v.toString(16)}`).join(',') || 'none (TLS 1.2 and below)';
        if (want.protocol === 'TLSv1.2') assert(!hello.versions.includes(0x0304), `a TLS 1.2-only client offered TLS 1.3: ${offered}`);
        return `${hello.types.length} extensions; supported_versions ${offered}`;
    });
}

async function caseTls(caseName, extra, want) {
    await caseStandard(caseName, () => openTls(extra), (conn) => tlsChecks(caseName, conn, want));
}

// The server does not need SNI, but it must not mind it either; and the client-side checks the
// other TLS cases rely on must be real: a wrong name and an unknown CA are refused.
async function caseTlsSni() {
    const caseName = 'tls-sni';
    const conn = openTls({ servername: 'localhost' });
    try {
        await connect(caseName, conn);
        await tlsChecks(caseName, conn, { protocol: 'TLSv1.3', sni: 'localhost' });
        await handshake(caseName, conn, 'pinus-protocol-tls');
        await echo(caseName, conn, 1, 'sni localhost');
    } finally {
        conn.close();
    }
    const refused = async (name, extra, codes) => {
        await step(caseName, name, async () => {
            const bad = openTls(extra);
            try {
                await bad.ready;
            } catch (err) {
                assert(codes.includes(err.code), `expected ${codes.join(' or ')}, got ${err.code}: ${err.message}`);
                return `${err.code}: ${err.message}`;
            } finally {
                bad.close();
            }
            throw new Error(`the handshake succeeded (${tlsSummary(bad.socket)})`);
        });
    };
    await refused('servername "wrong.example" → the client refuses the certificate', { servername: 'wrong.example' }, ['ERR_TLS_CERT_ALTNAME_INVALID']);
    await refused('a client without the test CA (Node\'s default roots) → the client refuses the certificate', { ca: undefined },
        ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN']);
}

// Bad peers on the TLS side of the port: one sits on half a ClientHello, one sends a TLS
// handshake record of garbage. The second is closed by the server (with an alert if it has
// one); meanwhile a verified TLS client is served as usual.
async function caseTlsBadPeer() {
    const caseName = 'tls-badpeer';
    const openRaw = () => {
        const sock = net.connect({ host: HOST, port: PORT });
        const got = { bytes: EMPTY, closed: null };
        const closed = new Promise((resolve) => {
            sock.on('data', (c) => { got.bytes = Buffer.concat([got.bytes, c]); });
            sock.on('error', (err) => { got.closed = got.closed || `error ${err.code || err.message}`; });
            sock.on('close', () => { got.closed = got.closed || 'close'; resolve(); });
        });
        const ready = new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
        return { sock, got, closed, ready };
    };
    const stalled = openRaw();
    const garbage = openRaw();
    const conn = openTls();
    try {
        await step(caseName, 'peer A: the start of a ClientHello (its record header announces 512 bytes, 6 follow), then silence', async () => {
            await stalled.ready;
            // Record header 16 03 01 02 00, ClientHello header 01 00 01 fc, legacy_version 03 03.
            stalled.sock.write(Buffer.from('1603010200010001fc0303', 'hex'));
        });
        await step(caseName, 'peer B: a handshake record of garbage (0x16 then 0xab × 16) → the server closes it', async () => {
            await garbage.ready;
            garbage.sock.write(Buffer.concat([Buffer.from('1603030010', 'hex'), Buffer.alloc(16, 0xab)]));
            await garbage.closed;
            const b = garbage.got.bytes;
            // An alert record: 15 03 03 00 02 <level> <description>.
            if (b.length >= 7 && b[0] === 0x15) return `${garbage.got.closed} after a TLS alert (level ${b[5]}, description ${b[6]})`;
            return `${garbage.got.closed}, ${b.length} bytes received first${b.length ? `: ${hex(b)}` : ''}`;
        });
        await connect(caseName, conn);
        await tlsChecks(caseName, conn, { protocol: 'TLSv1.3', sni: null });
        await handshake(caseName, conn, 'pinus-protocol-tls');
        await echo(caseName, conn, 1, 'served beside a stalled peer');
        await step(caseName, 'peer A got nothing from the server while the others were served', async () => {
            assert(stalled.got.bytes.length === 0, `peer A received ${hex(stalled.got.bytes)}`);
            return stalled.got.closed ? `closed meanwhile (${stalled.got.closed})` : 'still open';
        });
    } finally {
        conn.close();
        stalled.sock.destroy();
        garbage.sock.destroy();
    }
}

async function caseWsBatch() {
    const caseName = 'ws-batch';
    const conn = openWs();
    try {
        await connect(caseName, conn);
        await handshake(caseName, conn, 'js-websocket');
        await step(caseName, 'one frame = [HEARTBEAT, REQUEST #1 echo] → HEARTBEAT and RESPONSE #1', async () => {
            conn.send(Buffer.concat([pkg(Package.TYPE_HEARTBEAT), request(1, 'connector.entryHandler.echo', { t: 'batched' })]));
            const got = [await conn.inbound.next('first reply'), await conn.inbound.next('second reply')];
            const hb = got.find((p) => p.type === Package.TYPE_HEARTBEAT);
            const res = got.find((p) => p.type === Package.TYPE_DATA && p.msg.type === Message.TYPE_RESPONSE && p.msg.id === 1);
            assert(hb && res, `expected a HEARTBEAT and RESPONSE id=1, got ${got.map(describe).join('; ')}`);
            const body = JSON.parse(text(res.msg.body));
            assert(body.code === 200 && body.t === 'batched', `echo reply ${JSON.stringify(body)}`);
            return got.map((p) => TYPE_NAMES[p.type]).join(', ');
        });
        const uid = `interop-${caseName}-${RUN_ID}`;
        await step(caseName, 'one frame = [REQUEST #2 entry, REQUEST #3 echo] → RESPONSEs #2 and #3', async () => {
            conn.send(Buffer.concat([
                request(2, 'connector.entryHandler.entry', { uid }),
                request(3, 'connector.entryHandler.echo', { t: 'second' }),
            ]));
            const r2 = await expectResponse(conn, 2, 'entry response');
            const r3 = await expectResponse(conn, 3, 'echo response');
            assert(r2.body.code === 200 && r2.body.uid === uid, `entry reply ${JSON.stringify(r2.body)}`);
            assert(r3.body.code === 200 && r3.body.t === 'second', `echo reply ${JSON.stringify(r3.body)}`);
            return `${JSON.stringify(r2.body)} ${JSON.stringify(r3.body)}`;
        });
        await echo(caseName, conn, 4, 'still open after batched frames');
        await kick(caseName, conn, 5);
        await noExtraPushes(caseName, conn, 0);
    } finally {
        conn.close();
    }
}

// The official browser client, in Node through the shim of spec §6. It keeps one global client
// per module instance: each run (jsclient, then jsclient-wss) loads a fresh instance of it.
// `secure`: the client cannot be asked for wss:// (it builds 'ws://' + host + ':' + port), so the
// WebSocket class the shim gives it rewrites the URL to wss:// and adds the test CA; the case
// checks that this happened and says so in its step names.
async function caseJsClient(caseName, secure) {
    const tap = { sent: [], received: [], requested: [], opened: [], tls: null }; // via a ws subclass
    class TapWebSocket extends WebSocket {
        constructor(url, ...args) {
            tap.requested.push(url);
            if (secure) {
                const rewritten = String(url).replace(/^ws:\/\//, 'wss://');
                super(rewritten, [], { ca: CA, rejectUnauthorized: true });
                tap.opened.push(rewritten);
                this.once('open', () => {
                    tap.tls = { encrypted: !!this._socket.encrypted, authorized: this._socket.authorized, summary: tlsSummary(this._socket) };
                });
            } else {
                super(url, ...args);
                tap.opened.push(url);
            }
            this.on('message', (data) => {
                try {
                    const d = Package.decode(Buffer.from(data));
                    for (const p of Array.isArray(d) ? d : [d]) tap.received.push({ type: p.type, at: Date.now() });
                } catch (err) { /* the client itself will complain */ }
            });
        }
        send(data, ...rest) {
            const b = Buffer.from(data);
            tap.sent.push({ type: b[0], at: Date.now(), len: b.length });
            return super.send(data, ...rest);
        }
    }
    // The 4-line shim (plus the tap): window = global, WebSocket = ws, window.EventEmitter.
    global.window = global;
    global.WebSocket = TapWebSocket;
    window.EventEmitter = require('events').EventEmitter;
    require('pomelo-protocol'); // sees `window`: installs window.Protocol (Uint8Array mode)
    delete require.cache[require.resolve('pomelo-jsclient-websocket')]; // a fresh client instance

    // The client logs to the console ('connect to …', the whole close event): keep that for
    // failure reports instead.
    const logs = [];
    const origLog = console.log;
    const origErr = console.error;
    const quiet = (...a) => logs.push(a.map((x) => (typeof x === 'string' ? x : `[${x && x.constructor ? x.constructor.name : typeof x}]`)).join(' '));
    console.log = quiet;
    console.error = quiet;
    let pomelo;
    const events = { close: null, kick: null, pushes: [], errors: [], order: [] };
    const uid = `interop-${caseName}-${RUN_ID}`;
    const stepLoud = async (name, fn, ms) => {
        try {
            return await step(caseName, name, fn, ms);
        } catch (err) {
            if (logs.length) say(`       client console: ${logs.slice(-8).join(' | ')}`);
            throw err;
        }
    };
    try {
        const loadName = secure
            ? 'load pomelo-jsclient-websocket@0.1.1 through the shim, whose WebSocket REWRITES the client\'s ws:// URL to wss:// (the client has no wss option)'
            : 'load pomelo-jsclient-websocket@0.1.1 through the shim';
        await stepLoud(loadName, async () => {
            pomelo = require('pomelo-jsclient-websocket');
            assert(typeof pomelo.init === 'function' && typeof pomelo.request === 'function', 'no init/request exported');
            pomelo.on('close', (e) => { events.order.push('close'); events.close = { code: e && e.code }; });
            pomelo.on('onKick', (data) => { events.order.push('onKick'); events.kick = data; });
            pomelo.on('onPush', (body) => { events.pushes.push(body); });
            pomelo.on('error', (e) => { events.errors.push(String(e)); });
            pomelo.on('io-error', (e) => { events.errors.push(`io-error ${e && e.message}`); });
            pomelo.on('heartbeat timeout', () => { events.errors.push('heartbeat timeout'); });
        });
        let handshakeUser = 'not called';
        await stepLoud('init {host, port, user, handshakeCallback} → handshake 200, ACK, init callback', async () => {
            await new Promise((resolve, reject) => {
                pomelo.once('error', (e) => reject(new Error(`client 'error' event: ${e}`)));
                pomelo.once('io-error', (e) => reject(new Error(`client 'io-error': ${e && e.message}`)));
                pomelo.init({
                    host: HOST,
                    port: PORT,
                    user: { client: 'pomelo-jsclient-websocket', case: caseName },
                    handshakeCallback: (user) => { handshakeUser = user; },
                }, () => resolve());
            });
            assert(handshakeUser !== 'not called', 'handshakeCallback was not called');
            assert(tap.sent.map((s) => s.type).join(',') === '1,2', `client sent package types ${tap.sent.map((s) => s.type)} (expected HANDSHAKE, ACK)`);
            return `handshakeCallback(user=${JSON.stringify(handshakeUser)})`;
        });
        if (secure) {
            await stepLoud(`the client asked for ws://${HOST}:${PORT}, the shim opened wss:// over TLS verified with the test CA`, async () => {
                assert(tap.requested.length === 1 && tap.requested[0] === `ws://${HOST}:${PORT}`, `client requested ${JSON.stringify(tap.requested)}`);
                assert(tap.opened[0] === `wss://${HOST}:${PORT}`, `shim opened ${JSON.stringify(tap.opened)}`);
                assert(tap.tls && tap.tls.encrypted && tap.tls.authorized === true, `socket not verified TLS: ${JSON.stringify(tap.tls)}`);
                return `${tap.opened[0]}: ${tap.tls.summary}`;
            });
        }
        await stepLoud('server HEARTBEAT after the ACK', async () => {
            while (!tap.received.some((r) => r.type === Package.TYPE_HEARTBEAT)) await new Promise((r) => setTimeout(r, 10));
        });
        const req = (route, body) => new Promise((resolve) => pomelo.request(route, body, resolve));
        await stepLoud('request connector.entryHandler.entry {uid}', async () => {
            const body = await req('connector.entryHandler.entry', { uid });
            assert(body && body.code === 200 && body.uid === uid, `entry reply ${JSON.stringify(body)}`);
            return JSON.stringify(body);
        });
        await stepLoud('request connector.entryHandler.echo {t}', async () => {
            const t = { nested: ['héllo', 1, true] };
            const body = await req('connector.entryHandler.echo', { t });
            assert(body && body.code === 200 && JSON.stringify(body.t) === JSON.stringify(t), `echo reply ${JSON.stringify(body)}`);
            return JSON.stringify(body);
        });
        await stepLoud('request blast {m:3,size:8} → response, then 3 on(\'onPush\') with i = 0, 1, 2', async () => {
            const body = await req('connector.entryHandler.blast', { m: 3, size: 8 });
            assert(body && body.code === 200 && body.m === 3, `blast reply ${JSON.stringify(body)}`);
            while (events.pushes.length < 3) await new Promise((r) => setTimeout(r, 10));
            events.pushes.forEach((p, i) => assert(p.i === i && p.p === 'xxxxxxxx', `push ${i}: ${JSON.stringify(p)}`));
            return events.pushes.map((p) => JSON.stringify(p)).join(' ');
        });
        // The client sends its own HEARTBEAT sys.heartbeat seconds after a server one, and the
        // server echoes it.
        const hbSecs = opts.heartbeat || 30;
        await stepLoud(`client's own HEARTBEAT (after ~${hbSecs}s) → server HEARTBEAT`, async () => {
            let sent;
            while (!(sent = tap.sent.find((s) => s.type === Package.TYPE_HEARTBEAT))) await new Promise((r) => setTimeout(r, 20));
            while (!tap.received.some((r) => r.type === Package.TYPE_HEARTBEAT && r.at >= sent.at)) await new Promise((r) => setTimeout(r, 10));
            assert(!events.errors.length, `client events: ${events.errors.join('; ')}`);
            return `echoed in ${tap.received.find((r) => r.type === Package.TYPE_HEARTBEAT && r.at >= sent.at).at - sent.at} ms`;
        }, hbSecs * 1000 * 2 + STEP_MS);
        let kickReply = null;
        await stepLoud('request kick {reason:"bye"} → response, on(\'onKick\') {reason:"bye"}, then close', async () => {
            pomelo.request('connector.entryHandler.kick', { reason: 'bye' }, (b) => { events.order.push('response'); kickReply = b; });
            while (!events.close) await new Promise((r) => setTimeout(r, 10));
            assert(kickReply && kickReply.code === 200, `kick reply ${JSON.stringify(kickReply)} (none before close?)`);
            assert(events.kick && JSON.stringify(events.kick) === '{"reason":"bye"}', `onKick ${JSON.stringify(events.kick)}`);
            assert(events.order.join(',') === 'response,onKick,close', `events in order ${events.order.join(', ')}, expected response, onKick, close`);
            return `kick reply ${JSON.stringify(kickReply)}, onKick ${JSON.stringify(events.kick)}, close code ${events.close.code}`;
        });
        await stepLoud('exactly 3 onPush events, no client errors', async () => {
            assert(events.pushes.length === 3, `${events.pushes.length} pushes`);
            assert(!events.errors.length, `client events: ${events.errors.join('; ')}`);
        });
    } finally {
        if (pomelo) {
            try { pomelo.disconnect(); } catch (err) { /* already closed */ }
        }
        console.log = origLog;
        console.error = origErr;
    }
}

// ---------------------------------------------------------------- main

async function main() {
    say(`interop: gatehouse at ${HOST}:${PORT}; codecs pinus-protocol@${require('pinus-protocol/package.json').version}, ws@${require('ws/package.json').version}`);
    if (CA) say(`interop: TLS cases trust only the CA in ${opts.ca}; node ${process.version}, OpenSSL ${process.versions.openssl}`);
    const cases = {
        tcp: () => caseStandard('tcp', openTcp),
        ws: () => caseStandard('ws', openWs),
        'ws-batch': () => caseWsBatch(),
        tls: () => caseTls('tls', {}, { protocol: 'TLSv1.3', sni: null }),
        tls12: () => caseTls('tls12', { maxVersion: 'TLSv1.2' }, { protocol: 'TLSv1.2', sni: null }),
        'tls-sni': () => caseTlsSni(),
        'tls-badpeer': () => caseTlsBadPeer(),
        wss: () => caseStandard('wss', () => openWs(true)),
        jsclient: () => caseJsClient('jsclient', false),
        'jsclient-wss': () => caseJsClient('jsclient-wss', true),
    };
    for (const name of selected) {
        try {
            await cases[name]();
        } catch (err) {
            if (!(err instanceof CaseAbort)) {
                failed++;
                failures.push(`[${name}] crashed: ${err && err.stack || err}`);
                say(`FAIL - [${name}] crashed: ${err && err.stack || err}`);
            }
        }
    }
    if (failures.length) {
        say('failed steps:');
        for (const f of failures) say(`  ${f}`);
    }
    say(`interop: ${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
}

main().catch((err) => {
    say(`FAIL - interop.js itself: ${err && err.stack || err}`);
    say(`interop: ${passed} passed, ${failed + 1} failed`);
    process.exit(1);
});
