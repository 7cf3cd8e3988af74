// SPDX-License-Identifier: BSD-3-Clause
// Shared helpers for the tests that put tor-websocket-proxy next to
// third-party peers (a real browser, the npm `ws` package): TAP output,
// our binary run the way tor runs it (managed mode), a TCP echo server
// standing in for tor's ORPort, a SOCKS5 client speaking like tor, and a
// registry that stops every process we start on every exit path.
'use strict';

const childProcess = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const children = new Set();
const tempDirs = [];
const cleanups = [];
let testNumber = 0;
let failures = 0;

function diag(text) {
  for (const line of String(text).split('\n'))
    process.stdout.write(`# ${line}\n`);
}

function stopAll() {
  for (const fn of cleanups.splice(0))
    try { fn(); } catch (e) { /* best effort on the way out */ }
  // Every child we started, by its own PID.
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null)
      try { process.kill(child.pid, 'SIGKILL'); } catch (e) { /* already gone */ }
  children.clear();
  for (const dir of tempDirs.splice(0))
    fs.rmSync(dir, { recursive: true, force: true });
}

process.on('exit', stopAll);
for (const signal of ['SIGINT', 'SIGTERM'])
  process.on(signal, () => { stopAll(); process.exit(1); });

function onCleanup(fn) {
  cleanups.push(fn);
}

function makeTempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

// The whole script has a deadline: past it, everything is stopped and the
// run fails loudly instead of hanging until meson's timeout.
function watchdog(seconds) {
  const timer = setTimeout(() => {
    process.stdout.write(`not ok ${++testNumber} - watchdog: still running after ${seconds} s\n`);
    process.stdout.write(`1..${testNumber}\n`);
    stopAll();
    process.exit(1);
  }, seconds * 1000);
  timer.unref();
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function test(name, fn) {
  const number = ++testNumber;
  const started = Date.now();
  try {
    await fn();
    process.stdout.write(`ok ${number} - ${name} (${Date.now() - started} ms)\n`);
  } catch (e) {
    failures++;
    process.stdout.write(`not ok ${number} - ${name}\n`);
    diag(e && e.stack ? e.stack : String(e));
  }
}

function finish() {
  process.stdout.write(`1..${testNumber}\n`);
  stopAll();
  process.exit(failures === 0 ? 0 : 1);
}

function assert(condition, message) {
  if (!condition)
    throw new Error(`assertion failed: ${message}`);
}

function assertEqual(actual, expected, message) {
  if (actual !== expected)
    throw new Error(`assertion failed: ${message}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
}

function sha256(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function binaryPath() {
  const binary = process.env.TWP_BINARY;
  if (!binary || !fs.existsSync(binary))
    throw new Error(`TWP_BINARY does not name our binary (got ${binary})`);
  return binary;
}

// Starts a child we own; its stderr is kept for diagnostics.
function spawnOwned(command, args, options) {
  const child = childProcess.spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  children.add(child);
  child.stderrText = '';
  child.stderr.on('data', (chunk) => {
    if (child.stderrText.length < 65536)
      child.stderrText += chunk.toString();
  });
  child.on('exit', () => children.delete(child));
  return child;
}

// Reads managed-mode stdout lines until `doneLine`; returns all lines.
function readPtOutput(child, doneLine, ms) {
  return withTimeout(new Promise((resolve, reject) => {
    let buffer = '';
    const lines = [];
    const onData = (chunk) => {
      buffer += chunk.toString();
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        lines.push(line);
        if (line === doneLine) {
          child.stdout.off('data', onData);
          // Keep draining so that log lines never fill the pipe.
          child.stdout.resume();
          resolve(lines);
          return;
        }
      }
    };
    child.stdout.on('data', onData);
    child.on('exit', (code, signal) =>
      reject(new Error(`exited (${code ?? signal}) before "${doneLine}": ${lines.join(' | ')} ${child.stderrText}`)));
  }), ms, `waiting for "${doneLine}"`);
}

function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve();
  return withTimeout(new Promise((resolve) => {
    child.once('exit', resolve);
    process.kill(child.pid, 'SIGTERM');
  }), 5000, `stopping PID ${child.pid}`).catch(() => {
    process.kill(child.pid, 'SIGKILL');
  });
}

function escapeOptionValue(value) {
  return value.replace(/[\\;=]/g, (c) => `\\${c}`);
}

// Our server as tor runs it: ServerTransportPlugin + ServerTransportOptions.
// stdin stays open: if this script dies however it dies, the server sees
// EOF (TOR_PT_EXIT_ON_STDIN_CLOSE) and leaves too.
async function startServer({ orport, options = {} }) {
  const state = makeTempDir('twp-server-state-');
  const pairs = Object.entries(options).map(([k, v]) => `websocket:${k}=${escapeOptionValue(String(v))}`);
  const env = {
    ...process.env,
    TOR_PT_MANAGED_TRANSPORT_VER: '1',
    TOR_PT_SERVER_TRANSPORTS: 'websocket',
    TOR_PT_SERVER_BINDADDR: 'websocket-127.0.0.1:0',
    TOR_PT_ORPORT: orport,
    TOR_PT_STATE_LOCATION: state,
    TOR_PT_EXIT_ON_STDIN_CLOSE: '1',
  };
  if (pairs.length > 0)
    env.TOR_PT_SERVER_TRANSPORT_OPTIONS = pairs.join(';');
  const child = spawnOwned(binaryPath(), ['--server', '--managed'], { env });
  const lines = await readPtOutput(child, 'SMETHODS DONE', 10000);
  const smethod = lines.map((l) => /^SMETHOD websocket 127\.0\.0\.1:(\d+)/.exec(l)).find(Boolean);
  if (!smethod)
    throw new Error(`no SMETHOD in ${JSON.stringify(lines)}; stderr: ${child.stderrText}`);
  return { child, port: Number(smethod[1]) };
}

// Our client as tor runs it: ClientTransportPlugin websocket exec ...
async function startClient(extraArgs = []) {
  const state = makeTempDir('twp-client-state-');
  const env = {
    ...process.env,
    TOR_PT_MANAGED_TRANSPORT_VER: '1',
    TOR_PT_CLIENT_TRANSPORTS: 'websocket',
    TOR_PT_STATE_LOCATION: state,
    TOR_PT_EXIT_ON_STDIN_CLOSE: '1',
  };
  const child = spawnOwned(binaryPath(), ['--client', '--managed', ...extraArgs], { env });
  const lines = await readPtOutput(child, 'CMETHODS DONE', 10000);
  const cmethod = lines.map((l) => /^CMETHOD websocket socks5 127\.0\.0\.1:(\d+)$/.exec(l)).find(Boolean);
  if (!cmethod)
    throw new Error(`no CMETHOD in ${JSON.stringify(lines)}; stderr: ${child.stderrText}`);
  return { child, port: Number(cmethod[1]) };
}

// A TCP echo server standing in for tor's ORPort; it hashes what each
// connection received, so a test can tell the bytes really crossed it.
function startEchoServer() {
  const connections = [];
  const server = net.createServer((socket) => {
    const record = { hash: crypto.createHash('sha256'), bytes: 0, digest: null, closed: false };
    connections.push(record);
    socket.on('data', (chunk) => {
      record.hash.update(chunk);
      record.bytes += chunk.length;
    });
    socket.on('close', () => {
      record.closed = true;
      record.digest = record.hash.digest('hex');
    });
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  onCleanup(() => server.close());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port, connections }));
  });
}

// Buffered reads of exact lengths from a socket.
function exactReader(socket) {
  let buffer = Buffer.alloc(0);
  let waiter = null;
  let ended = null;
  const check = () => {
    if (waiter && buffer.length >= waiter.n) {
      const out = buffer.subarray(0, waiter.n);
      buffer = buffer.subarray(waiter.n);
      const w = waiter;
      waiter = null;
      w.resolve(out);
    } else if (waiter && ended) {
      const w = waiter;
      waiter = null;
      w.reject(new Error(`connection ended (${ended}) while waiting for ${w.n} bytes`));
    }
  };
  const onData = (chunk) => { buffer = Buffer.concat([buffer, chunk]); check(); };
  socket.on('data', onData);
  socket.on('end', () => { ended = 'EOF'; check(); });
  socket.on('error', (e) => { ended = e.message; check(); });
  return {
    read: (n) => new Promise((resolve, reject) => { waiter = { n, resolve, reject }; check(); }),
    detach: () => { socket.off('data', onData); return buffer; },
  };
}

// SOCKS5 with the bridge arguments in USERNAME/PASSWORD, as tor sends them.
async function socksConnect(port, bridgeArgs, destination = { host: '127.0.0.1', port: 9 }) {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await withTimeout(new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  }), 5000, 'SOCKS connect');
  const reader = exactReader(socket);
  const args = Buffer.from(bridgeArgs);
  const user = args.subarray(0, 255);
  const pass = args.length > 255 ? args.subarray(255) : Buffer.from([0]);
  socket.write(Buffer.from([5, 2, 0, 2]));
  const method = await withTimeout(reader.read(2), 5000, 'SOCKS method');
  assertEqual(method[1], 2, 'SOCKS method chosen');
  socket.write(Buffer.concat([Buffer.from([1, user.length]), user, Buffer.from([pass.length]), pass]));
  const auth = await withTimeout(reader.read(2), 5000, 'SOCKS auth');
  assertEqual(auth[1], 0, 'SOCKS auth status');
  const ip = destination.host.split('.').map(Number);
  socket.write(Buffer.from([5, 1, 0, 1, ...ip, destination.port >> 8, destination.port & 0xff]));
  const reply = await withTimeout(reader.read(10), 15000, 'SOCKS reply');
  assertEqual(reply[1], 0, 'SOCKS reply code');
  const leftover = reader.detach();
  assertEqual(leftover.length, 0, 'bytes before the tunnel carried data');
  return socket;
}

// Pushes `data` through a duplex TCP socket (with backpressure) and
// collects what comes back until as many bytes returned.
function echoThroughSocket(socket, data, ms) {
  return withTimeout(new Promise((resolve, reject) => {
    const received = [];
    let got = 0;
    socket.on('data', (chunk) => {
      received.push(chunk);
      got += chunk.length;
      if (got >= data.length)
        resolve(Buffer.concat(received));
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed after ${got} of ${data.length} bytes`)));
    let offset = 0;
    const pump = () => {
      while (offset < data.length) {
        const n = Math.min(data.length - offset, 1 + crypto.randomInt(32768));
        const more = socket.write(data.subarray(offset, offset + n));
        offset += n;
        if (!more) {
          socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
  }), ms, `echo of ${data.length} bytes`);
}

// Random message sizes from 1 byte up to `max`, adding up to `total`.
function messageSizes(total, max) {
  const sizes = [];
  let left = total;
  while (left > 0) {
    const pick = crypto.randomInt(8) === 0 ? max : 1 + crypto.randomInt(max);
    const n = Math.min(left, pick);
    sizes.push(n);
    left -= n;
  }
  return sizes;
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeStrictBase64(text) {
  if (!BASE64_RE.test(text))
    throw new Error(`not canonical base64: ${JSON.stringify(text.slice(0, 40))}`);
  return Buffer.from(text, 'base64');
}

module.exports = {
  assert, assertEqual, decodeStrictBase64, diag, echoThroughSocket, finish, makeTempDir,
  messageSizes, onCleanup, sha256, socksConnect, spawnOwned, startClient, startEchoServer,
  startServer, stopChild, test, watchdog, withTimeout,
};
