// SPDX-License-Identifier: BSD-3-Clause
// Runs in Chromium: opens a WebSocket to our server (binary frames, or the
// `base64` subprotocol with text frames), sends `total` random bytes in
// messages of random sizes, and reports what came back, with SHA-256
// digests computed by the browser itself.
'use strict';

function twpHex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

function twpToBase64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 8192)
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  return btoa(text);
}

function twpFromBase64(text) {
  // atob accepts some non-canonical input; the adapter must send canonical.
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text))
    throw new Error('not canonical base64: ' + text.slice(0, 40));
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++)
    bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// Opens a WebSocket and reports how it ended, without sending data.
function twpProbe(url, protocols) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocols);
    ws.onopen = () => { ws.close(1000); resolve({ opened: true, protocol: ws.protocol }); };
    ws.onclose = (event) => resolve({ opened: false, code: event.code });
  });
}

async function twpEcho(url, protocols, total, maxMessage) {
  const ws = new WebSocket(url, protocols);
  ws.binaryType = 'arraybuffer';
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onclose = (event) => reject(new Error('closed before open: ' + event.code));
  });
  const base64 = ws.protocol === 'base64';

  const data = new Uint8Array(total);
  for (let i = 0; i < total; i += 65536)
    crypto.getRandomValues(data.subarray(i, Math.min(total, i + 65536)));
  const back = new Uint8Array(total);
  const result = { protocol: ws.protocol, extensions: ws.extensions, sent: 0, binary: 0, text: 0, received: 0 };

  const done = new Promise((resolve, reject) => {
    ws.onmessage = (event) => {
      try {
        let bytes;
        if (typeof event.data === 'string') {
          result.text++;
          bytes = twpFromBase64(event.data);
        } else {
          result.binary++;
          bytes = new Uint8Array(event.data);
        }
        if (result.received + bytes.length > total)
          throw new Error('more bytes came back than were sent');
        back.set(bytes, result.received);
        result.received += bytes.length;
        if (result.received === total)
          resolve();
      } catch (e) {
        reject(e);
      }
    };
    ws.onclose = (event) => reject(new Error('closed (' + event.code + ') after ' + result.received + ' bytes'));
  });

  let offset = 0;
  while (offset < total) {
    const pick = Math.random() < 0.125 ? maxMessage : 1 + Math.floor(Math.random() * maxMessage);
    const piece = data.subarray(offset, Math.min(total, offset + pick));
    offset += piece.length;
    ws.send(base64 ? twpToBase64(piece) : piece);
    result.sent++;
    // Let the socket drain instead of queueing everything at once.
    while (ws.bufferedAmount > 1024 * 1024)
      await new Promise((r) => setTimeout(r, 5));
  }
  await done;
  ws.onclose = null;
  ws.close(1000);

  let equal = true;
  for (let i = 0; i < total; i++)
    if (data[i] !== back[i]) {
      equal = false;
      break;
    }
  result.equal = equal;
  result.sentSha256 = twpHex(await crypto.subtle.digest('SHA-256', data));
  result.receivedSha256 = twpHex(await crypto.subtle.digest('SHA-256', back));
  return result;
}
