// Node `ws` peer for chatws's benchmarks: echo or broadcast, same command
// line as chatws-bench-server:  node server.js --mode echo|broadcast --port N
// [--max-message-size B]. bufferutil (native unmasking) is installed so that
// ws runs as fast as it can; permessage-deflate is off, as for every server.
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

function parseArgs(argv) {
  const args = { mode: 'echo', port: 0, maxMessageSize: 16 * 1024 * 1024 };
  for (let i = 2; i < argv.length; i += 2) {
    const v = argv[i + 1];
    if (argv[i] === '--mode' && (v === 'echo' || v === 'broadcast')) args.mode = v;
    else if (argv[i] === '--port' && v) args.port = Number(v);
    else if (argv[i] === '--max-message-size' && v) args.maxMessageSize = Number(v);
    else {
      console.error('usage: node server.js --mode echo|broadcast --port N [--max-message-size B]');
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
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: args.port,
  backlog: 4096,
  perMessageDeflate: false,
  maxPayload: args.maxMessageSize,
  clientTracking: args.mode === 'broadcast',
});

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
