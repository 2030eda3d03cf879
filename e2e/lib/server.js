'use strict';
// Starts the Twofold binary on a free port with a fresh data directory (SQLite) or a fresh
// PostgreSQL database, and reads development mail from its log.
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');

const MAIL_START = '===== DEVELOPMENT MAIL (not sent) =====';
const MAIL_END = '===== END OF MAIL =====';

function backends() {
  const list = ['sqlite'];
  if (process.env.TWOFOLD_TEST_POSTGRES_URL) list.push('postgres');
  else if (process.env.CI === 'true') throw new Error('CI=true but TWOFOLD_TEST_POSTGRES_URL is not set');
  return list;
}

function psql(url, sql) {
  execFileSync('psql', [url, '-qtAc', sql], { stdio: 'pipe' });
}

function withDatabase(adminUrl, name) {
  const u = new URL(adminUrl);
  u.pathname = '/' + name;
  return u.toString();
}

async function startServer(backend) {
  const bin = process.env.TWOFOLD_BIN;
  if (!bin) throw new Error('set TWOFOLD_BIN to the twofold binary');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-e2e-'));
  const env = { ...process.env, TWOFOLD_LOG: 'info' };
  let dbName = null;
  if (backend === 'postgres') {
    dbName = 'twofold_e2e_' + crypto.randomBytes(6).toString('hex');
    psql(process.env.TWOFOLD_TEST_POSTGRES_URL, `CREATE DATABASE ${dbName}`);
    env.TWOFOLD_DATABASE__URL = withDatabase(process.env.TWOFOLD_TEST_POSTGRES_URL, dbName);
  }
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(dataDir, 'data')], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => { log += d.toString(); });
  child.stderr.on('data', (d) => { log += d.toString(); });
  const exited = new Promise((resolve) => child.on('exit', resolve));

  const baseUrl = await new Promise((resolve, reject) => {
    const deadline = Date.now() + 30000;
    const timer = setInterval(() => {
      const m = log.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) { clearInterval(timer); resolve(m[1]); }
      else if (child.exitCode !== null || Date.now() > deadline) {
        clearInterval(timer);
        reject(new Error('server did not start:\n' + log));
      }
    }, 50);
  });

  /** Mail blocks addressed to `to`, oldest first. */
  function mails(to) {
    const blocks = [];
    let rest = log;
    for (;;) {
      const s = rest.indexOf(MAIL_START);
      if (s < 0) break;
      const e = rest.indexOf(MAIL_END, s);
      if (e < 0) break;
      const block = rest.slice(s + MAIL_START.length, e);
      if (block.includes(`To: ${to}\n`)) blocks.push(block);
      rest = rest.slice(e + MAIL_END.length);
    }
    return blocks;
  }

  /** Waits for mail number `index` (0-based) to `to` and returns the first match of `re` in it. */
  async function waitForMail(to, re, index = 0) {
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline) {
      const block = mails(to)[index];
      if (block) {
        const m = block.match(re);
        if (!m) throw new Error(`mail ${index} to ${to} has no ${re}:\n${block}`);
        return m[0];
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no mail ${index} to ${to} arrived; log:\n${log}`);
  }

  async function stop() {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
    if (dbName) psql(process.env.TWOFOLD_TEST_POSTGRES_URL, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  }

  return { baseUrl, waitForMail, mailCount: (to) => mails(to).length, stop, log: () => log };
}

module.exports = { startServer, backends };
