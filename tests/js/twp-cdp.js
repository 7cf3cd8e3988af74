// SPDX-License-Identifier: BSD-3-Clause
// A small Chrome DevTools Protocol client for the `browser` suite: starts
// Debian's Chromium headless with --remote-debugging-pipe (no listening
// port, no npm package, any Node.js from 18 on) and drives one page. The
// browser is a child registered with twp-peers.js, so it is stopped by PID
// on every exit path; close() asks it to quit first.
'use strict';

const { EventEmitter } = require('node:events');
const peers = require('./twp-peers.js');

const { withTimeout } = peers;

// Every command gets an answer within this, or fails loudly; a script run
// in the page (an echo of 1 MiB under the sanitizers) gets longer.
const COMMAND_MS = 20000;
const EVALUATE_MS = 45000;

class Browser extends EventEmitter {
  constructor(child) {
    super();
    this.child = child;
    this.nextId = 1;
    this.pending = new Map();
    this.closed = null;
    // The pipe carries JSON messages, each ended by a NUL byte.
    this.input = child.stdio[3];
    let buffer = Buffer.alloc(0);
    child.stdio[4].on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      let end;
      while ((end = buffer.indexOf(0)) >= 0) {
        const text = buffer.subarray(0, end).toString('utf8');
        buffer = buffer.subarray(end + 1);
        this.dispatch(JSON.parse(text));
      }
    });
    // A write after Chromium is gone must not crash the test runner.
    this.input.on('error', () => {});
    child.on('exit', (code, signal) =>
      this.fail(`Chromium exited (${code ?? signal}): ${child.stderrText.slice(-2000)}`));
    // Chromium could not be started at all (not executable...).
    child.on('error', (e) => this.fail(`starting Chromium: ${e.message}`));
  }

  fail(reason) {
    this.closed = this.closed || reason;
    for (const { reject } of this.pending.values())
      reject(new Error(this.closed));
    this.pending.clear();
  }

  dispatch(message) {
    if (message.id !== undefined) {
      const waiter = this.pending.get(message.id);
      if (!waiter)
        return;
      this.pending.delete(message.id);
      if (message.error)
        waiter.reject(new Error(`${waiter.method}: ${message.error.message} (${message.error.code})`));
      else
        waiter.resolve(message.result);
    } else {
      this.emit(message.method, message.params, message.sessionId);
    }
  }

  send(method, params = {}, sessionId = undefined, ms = COMMAND_MS) {
    if (this.closed)
      return Promise.reject(new Error(`${method}: ${this.closed}`));
    const id = this.nextId++;
    const message = { id, method, params };
    if (sessionId)
      message.sessionId = sessionId;
    const answer = new Promise((resolve, reject) => {
      this.pending.set(id, { method, resolve, reject });
    });
    this.input.write(JSON.stringify(message) + '\0');
    return withTimeout(answer, ms, method).finally(() => this.pending.delete(id));
  }

  // A new tab, attached in flat mode: its commands and events carry its
  // sessionId on the browser's own pipe.
  async newPage() {
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(this, sessionId);
    await Promise.all([
      page.send('Page.enable'),
      page.send('Runtime.enable'),
      page.send('Network.enable'),
    ]);
    return page;
  }

  // Asks Chromium to quit, then makes sure it did: SIGKILL by PID if not.
  async close() {
    if (this.child.exitCode !== null || this.child.signalCode !== null || this.child.pid === undefined)
      return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.send('Browser.close').catch(() => {});
    try {
      await withTimeout(exited, 10000, 'Chromium to exit after Browser.close');
    } catch (e) {
      process.kill(this.child.pid, 'SIGKILL');
      await withTimeout(exited, 5000, 'Chromium to exit after SIGKILL');
    }
  }
}

class Page extends EventEmitter {
  constructor(browser, sessionId) {
    super();
    this.browser = browser;
    this.sessionId = sessionId;
    // Uncaught exceptions and unhandled rejections of the page.
    browser.on('Runtime.exceptionThrown', (params, session) => {
      if (session !== sessionId)
        return;
      const details = params.exceptionDetails;
      const text = details.exception && details.exception.description
        ? details.exception.description : details.text;
      this.emit('pageerror', new Error(text));
    });
  }

  send(method, params = {}, ms = COMMAND_MS) {
    return this.browser.send(method, params, this.sessionId, ms);
  }

  // Waits for the next event `method` of this page that `match` accepts.
  waitFor(method, match = () => true) {
    let listener;
    return withTimeout(new Promise((resolve) => {
      listener = (params, session) => {
        if (session === this.sessionId && match(params))
          resolve(params);
      };
      this.browser.on(method, listener);
    }), COMMAND_MS, `waiting for ${method}`).finally(() => this.browser.off(method, listener));
  }

  // Loads `url` and returns the HTTP status of its document once the
  // page's load event fired.
  async goto(url) {
    const responses = new Map();
    const onResponse = (params, session) => {
      if (session === this.sessionId && params.type === 'Document')
        responses.set(params.loaderId, params.response.status);
    };
    this.browser.on('Network.responseReceived', onResponse);
    try {
      const loaded = this.waitFor('Page.loadEventFired');
      const result = await this.send('Page.navigate', { url });
      if (result.errorText)
        throw new Error(`loading ${url}: ${result.errorText}`);
      await loaded;
      if (!responses.has(result.loaderId))
        throw new Error(`loading ${url}: no response for the document`);
      return responses.get(result.loaderId);
    } finally {
      this.browser.off('Network.responseReceived', onResponse);
    }
  }

  // Runs `fn(arg)` in the page, awaits its promise, returns its value
  // (JSON-serialisable); a page-side exception becomes ours.
  async evaluate(fn, arg) {
    const expression = `(${fn.toString()})(${JSON.stringify(arg === undefined ? null : arg)})`;
    const { result, exceptionDetails } = await this.send('Runtime.evaluate', {
      expression, awaitPromise: true, returnByValue: true,
    }, EVALUATE_MS);
    if (exceptionDetails) {
      const e = exceptionDetails.exception;
      throw new Error(`in the page: ${e && e.description ? e.description : exceptionDetails.text}`);
    }
    return result.value;
  }
}

// Starts Chromium with `args` and a fresh profile; resolves once it
// answers over the pipe.
async function launch({ executablePath, args = [] }) {
  const profile = peers.makeTempDir('twp-chromium-profile-');
  const child = peers.spawnOwned(executablePath, [
    ...args,
    '--remote-debugging-pipe',
    `--user-data-dir=${profile}`,
    'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  const browser = new Browser(child);
  try {
    await browser.send('Browser.getVersion');
  } catch (e) {
    await browser.close().catch(() => {});
    throw e;
  }
  return browser;
}

module.exports = { launch };
