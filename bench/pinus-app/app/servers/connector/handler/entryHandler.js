// The example gate's routes (examples/gate.rs), pinus flavour:
//   entry {uid} -> bind; echo {t}; blast {m,size,route}; stats {}
class Handler {
  constructor(app) {
    this.app = app;
  }

  entry(msg, session) {
    const uid = typeof msg.uid === 'string' ? msg.uid : JSON.stringify(msg.uid);
    return new Promise((resolve) => {
      session.bind(uid, (err) => {
        resolve(err ? { code: 500, error: String(err) } : { code: 200, uid });
      });
    });
  }

  async echo(msg) {
    return { code: 200, t: msg.t };
  }

  // Reply first, then `m` rounds of pushes to every bound uid through
  // sessionService.sendMessageByUid, each round's push encoded once (as the gate does).
  async blast(msg) {
    const rounds = Math.min(Number.isInteger(msg.m) ? msg.m : 1, 1000000);
    const size = Math.min(Number.isInteger(msg.size) ? msg.size : 16, 1 << 20);
    const route = typeof msg.route === 'string' ? msg.route : 'onPush';
    const sessionService = this.app.get('sessionService');
    const seen = new Set();
    sessionService.forEachBindedSession((s) => { if (s.uid) seen.add(s.uid); });
    const uids = Array.from(seen);
    const connector = this.app.components.__connector__.connector;
    const payload = 'x'.repeat(size);
    let round = 0;
    const step = () => {
      if (round >= rounds) return;
      const emsg = connector.encode(null, route, { i: round, p: payload });
      for (const uid of uids) sessionService.sendMessageByUid(uid, emsg);
      round += 1;
      setImmediate(step); // let the event loop write between rounds
    };
    setImmediate(step);
    return { code: 200, uids: uids.length, m: rounds };
  }

  async stats() {
    const sessionService = this.app.get('sessionService');
    const uids = new Set();
    sessionService.forEachBindedSession((s) => { if (s.uid) uids.add(s.uid); });
    return {
      code: 200,
      sessions: sessionService.getSessionsCount(),
      bound: uids.size,
      rss: process.memoryUsage().rss,
    };
  }
}

module.exports.default = (app) => new Handler(app);
