// SPDX-License-Identifier: BSD-3-Clause
// Suite `browser`: a real browser (Debian's Chromium, headless, driven over
// the DevTools protocol by twp-cdp.js; never a downloaded browser, no npm
// package, so Debian 12's own Node.js 18 runs it) as the WebSocket peer of our
// server. The page comes from our own server (static-dir=, same origin);
// its JavaScript (browser-page/echo.js) sends 1 MiB of random bytes in
// messages of random sizes, once as binary frames and once with the
// `base64` subprotocol (text frames), through our server to a TCP echo
// server standing in for tor's ORPort, and reports SHA-256 digests it
// computed with crypto.subtle. origin= is checked with the Origin header
// the browser itself sends.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const cdp = require('./twp-cdp.js');
const peers = require('./twp-peers.js');
const { assert, assertEqual, test, withTimeout } = peers;

const CHROMIUM = process.env.TWP_CHROMIUM || '/usr/bin/chromium';
const TOTAL = 1024 * 1024;
const PAGE_DIR = path.join(__dirname, 'browser-page');

peers.watchdog(55);

async function waitClosed(record) {
  await withTimeout((async () => {
    while (!record.closed)
      await new Promise((r) => setTimeout(r, 20));
  })(), 5000, 'ORPort connection to close after the WebSocket closed');
}

// Headers of `url` fetched by Node.js itself, outside the browser.
function httpHeaders(url) {
  return withTimeout(new Promise((resolve, reject) => {
    http.get(url, (response) => {
      response.resume();
      response.on('end', () => resolve(response.headers));
    }).on('error', reject);
  }), 10000, `GET ${url}`);
}

async function main() {
  assert(fs.existsSync(CHROMIUM), `${CHROMIUM} exists (scripts/install-deps.sh installs chromium)`);

  const echo = await peers.startEchoServer();
  const orport = `127.0.0.1:${echo.port}`;
  const site = await peers.startServer({ orport, options: { 'static-dir': PAGE_DIR } });
  const origin = `http://127.0.0.1:${site.port}`;
  const allowing = await peers.startServer({ orport, options: { origin } });
  const refusing = await peers.startServer({ orport, options: { origin: 'https://elsewhere.example' } });

  const browser = await withTimeout(cdp.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--no-default-browser-check', '--password-store=basic', '--disable-extensions',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-quic',
      // No crashpad handler: it would outlive the browser as an orphan.
      '--disable-breakpad', '--disable-crash-reporter'],
  }), 25000, 'launching Chromium');
  try {
    const page = await browser.newPage();
    const consoleErrors = [];
    page.on('pageerror', (e) => consoleErrors.push(e.message));

    await test('our server serves the page from static-dir (same origin)', async () => {
      const status = await page.goto(`${origin}/index.html`);
      assertEqual(status, 200, 'HTTP status of the page');
      assertEqual(await page.evaluate(() => document.title), 'tor-websocket-proxy browser peer', 'page title');
      assertEqual(await page.evaluate(() => typeof window.twpEcho), 'function', 'echo.js loaded');
      const headers = await httpHeaders(`${origin}/echo.js`);
      assertEqual(headers['content-type'], 'text/javascript', 'Content-Type of echo.js');
    });

    for (const [mode, protocols, maxMessage] of [['binary', [], 49152], ['base64', ['base64'], 16384]]) {
      await test(`Chromium WebSocket, ${mode}: ${TOTAL} random bytes echo byte-exact`, async () => {
        const before = echo.connections.length;
        const result = await page.evaluate(([url, p, total, max]) => window.twpEcho(url, p, total, max),
          [`ws://127.0.0.1:${site.port}/`, protocols, TOTAL, maxMessage]);
        peers.diag(`${mode}: ${result.sent} messages sent, ${result.binary} binary + ${result.text} text received`);
        assertEqual(result.protocol, mode === 'base64' ? 'base64' : '', 'ws.protocol in the browser');
        assertEqual(result.extensions, '', 'ws.extensions (Chromium offers permessage-deflate)');
        assertEqual(result.received, TOTAL, 'bytes back in the browser');
        assert(result.equal, 'every byte back equals the byte sent');
        assertEqual(result.receivedSha256, result.sentSha256, 'SHA-256 in the browser');
        if (mode === 'base64')
          assert(result.text > 0 && result.binary === 0, 'only text frames on a base64 connection');
        else
          assert(result.binary > 0 && result.text === 0, 'only binary frames on a binary connection');
        assertEqual(echo.connections.length, before + 1, 'ORPort connections for one WebSocket');
        const record = echo.connections[before];
        await waitClosed(record);
        assertEqual(record.bytes, TOTAL, 'bytes that reached the ORPort');
        assertEqual(record.digest, result.sentSha256, 'SHA-256 at the ORPort equals the browser\'s');
      });
    }

    await test('origin= lets the page\'s own origin in', async () => {
      const before = echo.connections.length;
      const result = await page.evaluate(([url]) => window.twpProbe(url, ['base64']),
        [`ws://127.0.0.1:${allowing.port}/`]);
      assert(result.opened, `WebSocket opened (close code ${result.code})`);
      assertEqual(result.protocol, 'base64', 'subprotocol');
      await withTimeout((async () => {
        while (echo.connections.length === before)
          await new Promise((r) => setTimeout(r, 20));
      })(), 5000, 'an ORPort connection for the allowed origin');
    });

    await test('origin= refuses another origin before reaching tor', async () => {
      const before = echo.connections.length;
      const result = await page.evaluate(([url]) => window.twpProbe(url, []),
        [`ws://127.0.0.1:${refusing.port}/`]);
      assert(!result.opened, 'WebSocket must not open');
      assertEqual(result.code, 1006, 'close code of a refused handshake');
      await new Promise((r) => setTimeout(r, 200));
      assertEqual(echo.connections.length, before, 'ORPort connections for a refused origin');
    });

    await test('no JavaScript errors on the page', async () => {
      assertEqual(consoleErrors.join('; '), '', 'page errors');
    });
  } finally {
    // Stops Chromium by its own PID however the tests above ended.
    await withTimeout(browser.close(), 20000, 'closing Chromium');
  }

  await test('our servers exit on SIGTERM', async () => {
    for (const server of [site, allowing, refusing]) {
      await peers.stopChild(server.child);
      assertEqual(server.child.signalCode, null, `PID ${server.child.pid} needed SIGKILL`);
      assertEqual(server.child.exitCode, 0, `exit status of PID ${server.child.pid}`);
    }
  });
}

main()
  .catch((e) => test('setup', () => { throw e; }))
  .finally(peers.finish);
