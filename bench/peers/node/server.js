// Node `ws` peer for chatws's benchmarks: echo or broadcast, same command
// line as chatws-bench-server:  node server.js --mode echo|broadcast --port N
// [--max-message-size B] [--tls-cert FILE --tls-key FILE] (wss:// over Node's
// https server, the TLS peer of the benchmarks). bufferutil (native unmasking) is installed so that
// ws runs as fast as it can; permessage-deflate is off, as for every server.
'use strict';
const fs = require('fs');
const https = require('https');
const { WebSocketServer, WebSocket } = require('ws');

function parseArgs(argv) {
  const args = { mode: 'echo', port: 0, maxMessageSize: 16 * 1024 * 1024, tlsCert: '', tlsKey: '',
                 perMessageDeflate: false };
  for (let i = 2; i < argv.length; i += 2) {
    const v = argv[i + 1];
    if (argv[i] === '--per-message-deflate') {  // a flag: ws's own defaults (threshold 1024 B)
      args.perMessageDeflate = true;
      i -= 1;
      continue;
    }
    if (argv[i] === '--mode' && (v === 'echo' || v === 'broadcast')) args.mode = v;
    else if (argv[i] === '--port' && v) args.port = Number(v);
    else if (argv[i] === '--max-message-size' && v) args.maxMessageSize = Number(v);
    else if (argv[i] === '--tls-cert' && v) args.tlsCert = v;
    else if (argv[i] === '--tls-key' && v) args.tlsKey = v;
    else {
      console.error('usage: node server.js --mode echo|broadcast --port N [--max-message-size B] [--per-message-deflate]');
      process.exit(2);
    }
  }
  if (!(args.port > 0 && args.port < 65536)) {
    console.error('server.js: --port is required');
    process.exit(2);
  }
  return args;
}

const args = parseArgs(process.argv);
const common = { perMessageDeflate: args.perMessageDeflate, maxPayload: args.maxMessageSize,
                 clientTracking: args.mode === 'broadcast' };
let wss;
if (args.tlsCert) {
  const server = https.createServer({ cert: fs.readFileSync(args.tlsCert), key: fs.readFileSync(args.tlsKey) });
  wss = new WebSocketServer({ server, ...common });
  server.listen(args.port, '127.0.0.1', 4096, () => console.log(`node ws ${args.mode} server on wss://127.0.0.1:${args.port}`));
} else {
  wss = new WebSocketServer({ host: '127.0.0.1', port: args.port, backlog: 4096, ...common });
}

wss.on('connection', (ws) => {
  ws.on('error', () => {}); // a reset peer must not crash the server
  if (args.mode === 'echo') {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  } else {
    // The broadcast recipe from ws's README.
    ws.on('message', (data, isBinary) => {
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
      }
    });
  }
});

wss.on('listening', () => console.log(`node ws ${args.mode} server on 127.0.0.1:${args.port}`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
