'use strict';
// A stand-in for Twilio's Messages API: records every text the server sends and answers like
// Twilio (201 and a message sid), so a test can read the code off the "phone".
const http = require('node:http');

async function startSmsGateway() {
  const requests = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      requests.push({ method: req.method, path: req.url, headers: req.headers, form: new URLSearchParams(body) });
      res.writeHead(201, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify({ sid: 'SM00000000000000000000000000000000', status: 'queued' }));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;

  /** The 6-digit code in the `nth` (0-based) text to `to`, waiting up to 15 s for it. */
  async function waitForCode(to, nth = 0) {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const texts = requests.filter((r) => r.form.get('To') === to);
      if (texts[nth]) {
        const m = /\b(\d{6})\b/.exec(texts[nth].form.get('Body'));
        if (!m) throw new Error(`no code in text: ${texts[nth].form.get('Body')}`);
        return m[1];
      }
      if (Date.now() > deadline) throw new Error(`text #${nth + 1} to ${to} did not arrive within 15 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  return {
    url,
    requests,
    waitForCode,
    /** Environment that points the server's Twilio adapter here. */
    env: {
      TWOFOLD_SMS__ADAPTER: 'twilio',
      TWOFOLD_SMS__TWILIO__ACCOUNT_SID: 'ACtest',
      TWOFOLD_SMS__TWILIO__AUTH_TOKEN: 'test-token',
      TWOFOLD_SMS__TWILIO__FROM: '+15005550006',
      TWOFOLD_SMS__TWILIO__BASE_URL: url,
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

module.exports = { startSmsGateway };
