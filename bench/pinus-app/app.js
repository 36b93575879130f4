// Minimal pinus 1.7.4 frontend with the example gate's routes (examples/gate.rs), so
// the load generator (loadgen/) drives both the same way. Started by bench/compare.sh: `node app.js`
// starts the master, which spawns the connector (`connector-server-1`).
// Ports (loopback client port): PINUS_CLIENT_PORT (default 13010); master 13005, rpc 13150,
// see config/servers.json and config/master.json.
require('reflect-metadata'); // first, or the loader crashes (Reflect.hasMetadata)
const pinus = require('pinus').pinus;

const app = pinus.createApp();
app.set('name', 'gatehouse-bench');

app.configure('production|development', 'connector', function () {
  app.set('connectorConfig', {
    connector: pinus.connectors.hybridconnector,
    heartbeat: 30,
    distinctHost: true, // bind the client port to clientHost (127.0.0.1) only
    useDict: false,
    useProtobuf: false,
  });
});

app.start();

process.on('uncaughtException', function (err) {
  console.error(' Caught exception: ' + (err && err.stack));
});
