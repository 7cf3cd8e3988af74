// SPDX-License-Identifier: BSD-3-Clause
// Suite `ws`: tor-websocket-proxy against another WebSocket implementation,
// the npm `ws` package, in both directions and both frame modes:
//  - a `ws` client talks to our server (a TCP echo server as tor's ORPort);
//  - our client (managed, as tor runs it; SOCKS5 with bridge arguments)
//    talks to a `ws` echo server that picks the `base64` subprotocol when
//    offered and then must see only text frames of canonical base64.
// Every transfer is a few MiB of random bytes, compared by SHA-256.
'use strict';

const crypto = require('node:crypto');
const { WebSocket, WebSocketServer } = require('ws');
const peers = require('./twp-peers.js');
const { assert, assertEqual, sha256, test, withTimeout } = peers;

const TOTAL = 3 * 1024 * 1024;

peers.watchdog(50);

function openWs(url, protocols) {
  // perMessageDeflate is offered on purpose: our server must decline it.
  const ws = new WebSocket(url, protocols, { perMessageDeflate: true, maxPayload: 1 << 20 });
  peers.onCleanup(() => ws.terminate());
  return withTimeout(new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  }), 5000, `opening ${url}`);
}

// ws client -> our server -> echo; returns what came back and frame counts.
async function wsClientEcho(port, base64) {
  const ws = await openWs(`ws://127.0.0.1:${port}/`, base64 ? ['base64'] : []);
  assertEqual(ws.protocol, base64 ? 'base64' : '', 'negotiated subprotocol');
  assertEqual(ws.extensions, '', 'negotiated extensions (permessage-deflate must be declined)');

  const data = crypto.randomBytes(TOTAL);
  const counts = { binary: 0, text: 0 };
  const chunks = [];
  let got = 0;
  const done = new Promise((resolve, reject) => {
    ws.on('message', (message, isBinary) => {
      try {
        let bytes;
        if (isBinary) {
          counts.binary++;
          bytes = message;
        } else {
          counts.text++;
          bytes = peers.decodeStrictBase64(message.toString('latin1'));
        }
        chunks.push(bytes);
        got += bytes.length;
        if (got >= TOTAL)
          resolve();
      } catch (e) {
        reject(e);
      }
    });
    ws.on('close', (code) => reject(new Error(`closed (${code}) after ${got} bytes`)));
    ws.on('error', reject);
  });

  let offset = 0;
  let sent = 0;
  // 16384 bytes of binary (21848 base64 characters) is what every endpoint
  // must take; binary messages go up to 48 KiB, under the 64 KiB default.
  for (const n of peers.messageSizes(TOTAL, base64 ? 16384 : 49152)) {
    const piece = data.subarray(offset, offset + n);
    offset += n;
    sent++;
    if (base64)
      ws.send(piece.toString('base64'), { binary: false });
    else
      ws.send(piece, { binary: true });
  }
  await withTimeout(done, 20000, 'echo through our server');
  ws.close(1000);
  return { data, back: Buffer.concat(chunks), counts, sent };
}

// A `ws` echo server; records what each connection negotiated and saw.
function startWsEchoServer() {
  const records = [];
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: true,
    maxPayload: 1 << 20,
    handleProtocols: (protocols) => (protocols.has('base64') ? 'base64' : false),
  });
  peers.onCleanup(() => {
    for (const client of wss.clients)
      client.terminate();
    wss.close();
  });
  wss.on('connection', (ws, request) => {
    const record = {
      protocol: ws.protocol,
      extensions: ws.extensions,
      offeredProtocols: request.headers['sec-websocket-protocol'] || '',
      offeredExtensions: request.headers['sec-websocket-extensions'] || '',
      binary: 0,
      text: 0,
      errors: [],
      hash: crypto.createHash('sha256'),
      bytes: 0,
    };
    records.push(record);
    ws.on('message', (message, isBinary) => {
      try {
        if (ws.protocol === 'base64') {
          if (isBinary)
            throw new Error('binary frame on a base64 connection');
          record.text++;
          const bytes = peers.decodeStrictBase64(message.toString('latin1'));
          record.hash.update(bytes);
          record.bytes += bytes.length;
          ws.send(bytes.toString('base64'), { binary: false });
        } else {
          if (!isBinary)
            throw new Error('text frame on a binary connection');
          record.binary++;
          record.hash.update(message);
          record.bytes += message.length;
          ws.send(message, { binary: true });
        }
      } catch (e) {
        record.errors.push(e.message);
        ws.close(1002);
      }
    });
    ws.on('error', (e) => record.errors.push(e.message));
  });
  return new Promise((resolve) => wss.once('listening', () => resolve({ wss, port: wss.address().port, records })));
}

async function main() {
  const echo = await peers.startEchoServer();
  const server = await peers.startServer({ orport: `127.0.0.1:${echo.port}` });
  const wsServer = await startWsEchoServer();
  const client = await peers.startClient();

  for (const base64 of [false, true]) {
    const mode = base64 ? 'base64' : 'binary';

    await test(`ws client -> our server, ${mode}: ${TOTAL} bytes echo byte-exact`, async () => {
      const before = echo.connections.length;
      const result = await wsClientEcho(server.port, base64);
      assertEqual(result.back.length, TOTAL, 'bytes echoed');
      assertEqual(sha256(result.back), sha256(result.data), 'SHA-256 of the echo');
      if (base64) {
        assertEqual(result.counts.binary, 0, 'binary frames from our server in base64 mode');
        assert(result.counts.text > 0, 'text frames from our server');
      } else {
        assertEqual(result.counts.text, 0, 'text frames from our server in binary mode');
        assert(result.counts.binary > 0, 'binary frames from our server');
      }
      assertEqual(echo.connections.length, before + 1, 'ORPort connections for one WebSocket');
      const orport = echo.connections[before];
      await withTimeout((async () => {
        while (!orport.closed)
          await new Promise((r) => setTimeout(r, 20));
      })(), 5000, 'ORPort connection to close after the WebSocket closed');
      assertEqual(orport.bytes, TOTAL, 'bytes that reached the ORPort');
      assertEqual(orport.digest, sha256(result.data), 'SHA-256 of what reached the ORPort');
    });

    await test(`our client (managed) -> ws server, ${mode}: ${TOTAL} bytes echo byte-exact`, async () => {
      const before = wsServer.records.length;
      const args = `url=ws://127.0.0.1:${wsServer.port}/` + (base64 ? ';mode=base64' : '');
      const socket = await peers.socksConnect(client.port, args, { host: '127.0.0.1', port: wsServer.port });
      peers.onCleanup(() => socket.destroy());
      const data = crypto.randomBytes(TOTAL);
      const back = await peers.echoThroughSocket(socket, data, 20000);
      socket.destroy();
      assertEqual(back.length, TOTAL, 'bytes echoed');
      assertEqual(sha256(back), sha256(data), 'SHA-256 of the echo');
      assertEqual(wsServer.records.length, before + 1, 'WebSocket connections at the ws server');
      const record = wsServer.records[before];
      assertEqual(record.errors.join('; '), '', 'errors at the ws server');
      assertEqual(record.protocol, base64 ? 'base64' : '', 'subprotocol the ws server chose');
      assertEqual(record.offeredProtocols, base64 ? 'base64' : '', 'subprotocols our client offered');
      assertEqual(record.extensions, '', 'extensions in use');
      assertEqual(record.bytes, TOTAL, 'bytes the ws server decoded');
      assertEqual(record.hash.digest('hex'), sha256(data), 'SHA-256 of what the ws server received');
      if (base64)
        assert(record.text > 0 && record.binary === 0, `text frames only (text ${record.text}, binary ${record.binary})`);
      else
        assert(record.binary > 0 && record.text === 0, `binary frames only (text ${record.text}, binary ${record.binary})`);
    });
  }

  await test('our processes exit on SIGTERM', async () => {
    for (const child of [server.child, client.child]) {
      await peers.stopChild(child);
      assertEqual(child.signalCode, null, `PID ${child.pid} needed SIGKILL`);
    }
  });
}

main()
  .catch((e) => test('setup', () => { throw e; }))
  .finally(peers.finish);
