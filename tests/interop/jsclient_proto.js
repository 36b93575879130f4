#!/usr/bin/env node
// Interop, protobuf bodies and route compression: the official browser client
// pomelo-jsclient-websocket@0.1.1 with its protobuf module (npm pomelo-protobuf@0.4.0's browser
// build, lib/client/protobuf.js), in Node through the window/WebSocket shim, against a gate
// started with `--dict --protos examples/protos`.
//
//   node jsclient_proto.js HOST PORT [--timeout MS]
//
// The official client keeps one global client per module instance, so this runs in its own
// process (run.sh starts it after interop.js). Web pages that use the browser build alias
// `protobuf.decodeStr` to `decode` (the client calls `decodeStr`, the build lacks it): so does
// this shim. Prints "ok - …" / "FAIL - …" per step, then exactly "interop: N passed, M failed".

'use strict';

const WebSocket = require('ws');
const { Package, Message } = require('pinus-protocol');

const argv = process.argv.slice(2);
const positional = [];
let STEP_MS = 3000;
for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--timeout') STEP_MS = Number(argv[++i]);
    else positional.push(argv[i]);
}
if (positional.length !== 2 || !(STEP_MS > 0)) {
    console.error('usage: node jsclient_proto.js HOST PORT [--timeout MS]');
    process.exit(2);
}
const HOST = positional[0];
const PORT = Number(positional[1]);

const say = (line) => process.stdout.write(`${line}\n`);
let passed = 0;
let failed = 0;

function assert(cond, what) {
    if (!cond) throw new Error(what);
}

async function step(name, fn) {
    let timer;
    try {
        const detail = await Promise.race([
            fn(),
            new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${STEP_MS} ms`)), STEP_MS); }),
        ]);
        passed++;
        say(`ok - [jsclient-proto] ${name}${detail ? `: ${detail}` : ''}`);
    } catch (err) {
        failed++;
        say(`FAIL - [jsclient-proto] ${name}: ${err && err.message}`);
        throw err;
    } finally {
        clearTimeout(timer);
    }
}

const until = async (cond) => { while (!cond()) await new Promise((r) => setTimeout(r, 10)); };

async function main() {
    // What crossed the wire, decoded with pinus's own codec (not the client's).
    const tap = { sent: [], received: [] };
    class TapWebSocket extends WebSocket {
        constructor(...args) {
            super(...args);
            this.on('message', (data) => {
                const d = Package.decode(Buffer.from(data));
                for (const p of Array.isArray(d) ? d : [d]) tap.received.push(p);
            });
        }
        send(data, ...rest) {
            const d = Package.decode(Buffer.from(data));
            for (const p of Array.isArray(d) ? d : [d]) tap.sent.push(p);
            return super.send(data, ...rest);
        }
    }
    global.window = global;
    global.WebSocket = TapWebSocket;
    window.EventEmitter = require('events').EventEmitter;
    // A browser's localStorage, in memory: the client caches the protos there and sends their
    // version back on its next handshake.
    const store = new Map();
    window.localStorage = {
        getItem: (k) => (store.has(k) ? store.get(k) : null),
        setItem: (k, v) => store.set(k, String(v)),
        removeItem: (k) => store.delete(k),
    };
    require('pomelo-protocol');
    // The browser build of pomelo-protobuf, as a web page includes it.
    const protobuf = require('pomelo-protobuf/lib/client/protobuf.js');
    protobuf.decodeStr = protobuf.decode;
    window.protobuf = protobuf;

    const logs = [];
    // The client's console chatter (it dumps whole close events) is kept for failure reports.
    console.log = (...a) => logs.push(a.map((x) => (typeof x === 'string' ? x : `[${x && x.constructor ? x.constructor.name : typeof x}]`)).join(' '));
    console.error = console.log;
    const pomelo = require('pomelo-jsclient-websocket');
    const pushes = [];
    const errors = [];
    pomelo.on('onPush', (body) => pushes.push(body));
    pomelo.on('error', (e) => errors.push(String(e)));
    pomelo.on('io-error', (e) => errors.push(`io-error ${e && e.message}`));
    const req = (route, body) => new Promise((resolve) => pomelo.request(route, body, resolve));
    const uid = `interop-proto-${process.pid}`;

    try {
        await step('init → handshake reply with useProto, protos and dict', async () => {
            await new Promise((resolve) => pomelo.init({ host: HOST, port: PORT, user: {} }, resolve));
            const hs = tap.received.find((p) => p.type === Package.TYPE_HANDSHAKE);
            const sys = JSON.parse(Buffer.from(hs.body).toString()).sys;
            assert(sys.useProto === true, `useProto ${sys.useProto}`);
            assert(sys.protos && sys.protos.server.onPush && sys.protos.client['connector.entryHandler.entry'], 'protos missing');
            assert(sys.useDict === true && sys.dict && sys.dict.onPush, 'dict missing');
            return `protos version ${sys.protos.version}, ${Object.keys(sys.dict).length} dict routes`;
        });
        await step('request entry {uid}: sent as protobuf, answered in protobuf', async () => {
            const body = await req('connector.entryHandler.entry', { uid });
            assert(body && body.code === 200 && body.uid === uid, `entry reply ${JSON.stringify(body)}`);
            const data = tap.sent.filter((p) => p.type === Package.TYPE_DATA);
            const msg = Message.decode(Buffer.from(data[data.length - 1].body));
            assert(msg.compressRoute, 'the route was not compressed');
            const raw = Buffer.from(msg.body);
            assert(raw[0] !== 0x7b, `request body looks like JSON: ${raw.toString()}`);
            const reply = tap.received.filter((p) => p.type === Package.TYPE_DATA).pop();
            const replyBody = Buffer.from(Message.decode(Buffer.from(reply.body)).body);
            assert(replyBody[0] !== 0x7b, `response body looks like JSON: ${replyBody.toString()}`);
            return `${JSON.stringify(body)}; request body ${raw.length} B, response body ${replyBody.length} B`;
        });
        await step('request echo {t: 12.5} (double) → {code: 200, t: 12.5}', async () => {
            const body = await req('connector.entryHandler.echo', { t: 12.5 });
            assert(body && body.code === 200 && body.t === 12.5, `echo reply ${JSON.stringify(body)}`);
            return JSON.stringify(body);
        });
        await step('blast {m:3,size:8} (JSON route) → 3 onPush pushes in protobuf, route by code', async () => {
            const body = await req('connector.entryHandler.blast', { m: 3, size: 8 });
            assert(body && body.code === 200 && body.m === 3, `blast reply ${JSON.stringify(body)}`);
            await until(() => pushes.length >= 3);
            pushes.forEach((p, i) => assert(p.i === i && p.p === 'xxxxxxxx', `push ${i}: ${JSON.stringify(p)}`));
            const wire = tap.received.filter((p) => p.type === Package.TYPE_DATA)
                .map((p) => Message.decode(Buffer.from(p.body)))
                .filter((m) => m.type === Message.TYPE_PUSH);
            assert(wire.length === 3 && wire.every((m) => m.compressRoute && Buffer.from(m.body)[0] !== 0x7b), 'pushes not compressed/protobuf on the wire');
            return pushes.map((p) => JSON.stringify(p)).join(' ');
        });
        await step('reconnect: the client sends the cached protoVersion, the reply omits protos, requests still work', async () => {
            const version = JSON.parse(window.localStorage.getItem('protos')).version;
            pomelo.disconnect();
            tap.sent.length = 0;
            tap.received.length = 0;
            await new Promise((resolve) => pomelo.init({ host: HOST, port: PORT, user: {} }, resolve));
            const hello = JSON.parse(Buffer.from(tap.sent.find((p) => p.type === Package.TYPE_HANDSHAKE).body).toString());
            assert(hello.sys.protoVersion === version, `client sent protoVersion ${hello.sys.protoVersion}`);
            const hs = tap.received.find((p) => p.type === Package.TYPE_HANDSHAKE);
            const sys = JSON.parse(Buffer.from(hs.body).toString()).sys;
            assert(sys.useProto === true && sys.protos === undefined, `reply sys ${JSON.stringify(sys).slice(0, 200)}`);
            const body = await req('connector.entryHandler.entry', { uid });
            assert(body && body.code === 200 && body.uid === uid, `entry reply ${JSON.stringify(body)}`);
            return `protoVersion ${version} sent back; ${JSON.stringify(body)}`;
        });
        await step('no client errors', async () => {
            assert(!errors.length, errors.join('; '));
        });
    } catch (err) {
        if (logs.length) say(`       client console: ${logs.slice(-6).join(' | ')}`);
    } finally {
        try { pomelo.disconnect(); } catch (err) { /* closed */ }
    }
    say(`interop: ${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
}

main().catch((err) => {
    say(`FAIL - jsclient_proto.js itself: ${err && err.stack || err}`);
    say(`interop: ${passed} passed, ${failed + 1} failed`);
    process.exit(1);
});
