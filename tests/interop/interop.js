#!/usr/bin/env node
// Interop test: codecs nobody in this repository wrote, talking to the gatehouse example gate.
//
//   node interop.js HOST PORT [--heartbeat SECONDS] [--timeout MS] [--only CASE,CASE…]
//
// Cases (run one after the other; the gate's `blast` pushes to every bound uid):
//   tcp       raw TCP; 4-byte package framing by pinus-protocol@1.7.4 Package.encode/decode
//   ws        WebSocket (ws 8), one package per binary frame, same codec
//   ws-batch  WebSocket, several packages in one frame (pinus disconnects; gatehouse must not)
//   jsclient  the official browser client pomelo-jsclient-websocket@0.1.1 + pomelo-protocol@0.1.6,
//             run in Node through the window/WebSocket shim (spec §6)
//
// Prints one line per check ("ok - …" / "FAIL - …") and finally exactly
// "interop: N passed, M failed". Exits 0 only if nothing failed. A failed step aborts its case
// (the following steps depend on it); the other cases still run.

'use strict';

const net = require('net');
const WebSocket = require('ws');
const { Package, Message, Protocol } = require('pinus-protocol');

// ---------------------------------------------------------------- arguments

function usage(msg) {
    if (msg) console.error(`interop: ${msg}`);
    console.error('usage: node interop.js HOST PORT [--heartbeat SECONDS] [--timeout MS] [--only tcp,ws,ws-batch,jsclient]');
    process.exit(2);
}

const argv = process.argv.slice(2);
const positional = [];
const opts = { heartbeat: null, timeout: 3000, only: null };
for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--heartbeat') opts.heartbeat = Number(argv[++i]);
    else if (a === '--timeout') opts.timeout = Number(argv[++i]);
    else if (a === '--only') opts.only = String(argv[++i]).split(',');
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
const ALL_CASES = ['tcp', 'ws', 'ws-batch', 'jsclient'];
for (const c of opts.only || []) if (!ALL_CASES.includes(c)) usage(`unknown case ${c}`);

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

function openTcp() {
    const inbound = new Inbound();
    const socket = net.connect({ host: HOST, port: PORT });
    socket.setNoDelay(true);
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
    socket.on('error', (err) => inbound.end({ how: 'tcp error', error: err.message }));
    socket.on('close', (hadError) => {
        inbound.end({ how: 'tcp close', hadError, trailingBytes: buf.length ? hex(buf) : undefined });
    });
    const ready = new Promise((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
    });
    return {
        kind: 'tcp',
        inbound,
        ready,
        send: (bytes) => socket.write(bytes),
        close: () => socket.destroy(),
    };
}

function openWs() {
    const inbound = new Inbound();
    const ws = new WebSocket(`ws://${HOST}:${PORT}/`);
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
            assert(info.how === 'tcp close' && !info.trailingBytes, `expected a clean TCP close, got ${JSON.stringify(info)}`);
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
    await step(caseName, `connect ${conn.kind === 'ws' ? `ws://${HOST}:${PORT}/` : `tcp ${HOST}:${PORT}`}`, async () => {
        await conn.ready;
    });
}

// ---------------------------------------------------------------- cases

const RUN_ID = `${process.pid}-${Date.now().toString(36)}`;

async function caseStandard(caseName, open) {
    const conn = open();
    try {
        await connect(caseName, conn);
        await handshake(caseName, conn, conn.kind === 'ws' ? 'js-websocket' : 'pinus-protocol-tcp');
        await entry(caseName, conn, 1, `interop-${caseName}-${RUN_ID}`);
        await echo(caseName, conn, 2, `héllo ✓ ${caseName}`);
        let id = 3;
        if (conn.kind === 'tcp') {
            // Stream reassembly on the server: two packages in one write, the second one's
            // head split across writes.
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
// per module instance, so it runs once, last, in this process.
async function caseJsClient() {
    const caseName = 'jsclient';
    const tap = { sent: [], received: [] }; // package types on the wire, via a ws subclass
    class TapWebSocket extends WebSocket {
        constructor(...args) {
            super(...args);
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
        await stepLoud('load pomelo-jsclient-websocket@0.1.1 through the shim', async () => {
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
    const cases = {
        tcp: () => caseStandard('tcp', openTcp),
        ws: () => caseStandard('ws', openWs),
        'ws-batch': () => caseWsBatch(),
        jsclient: () => caseJsClient(),
    };
    for (const name of ALL_CASES) {
        if (opts.only && !opts.only.includes(name)) continue;
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
