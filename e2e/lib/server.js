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
const START_TIMEOUT_MS = 30_000;
const MAIL_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 15_000;

/** The storage backends to run against: SQLite always, PostgreSQL when a URL is given. */
function backends() {
  const list = ['sqlite'];
  if (process.env.TWOFOLD_TEST_POSTGRES_URL) list.push('postgres');
  else if (process.env.CI === 'true') {
    throw new Error('CI=true but TWOFOLD_TEST_POSTGRES_URL is not set: the PostgreSQL run may not be skipped');
  }
  return list;
}

function psql(url, sql) {
  try {
    execFileSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qtAc', sql], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`psql failed: ${sql}\n${e.stderr || e.message}`);
  }
}

function withDatabase(adminUrl, name) {
  const u = new URL(adminUrl);
  u.pathname = '/' + name;
  return u.toString();
}

/**
 * The environment for the server: ours, minus any TWOFOLD_* configuration inherited from the
 * shell (TWOFOLD_CONFIG, TWOFOLD_DATABASE__URL, ...), so that the SQLite run really is SQLite
 * with built-in defaults.
 */
function serverEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('TWOFOLD_')) env[k] = v;
  }
  env.TWOFOLD_LOG = process.env.TWOFOLD_LOG || 'info';
  // Every test starts a fresh browser, which would be an unknown device at each sign-in;
  // tests of known devices pass opts.env to turn verification and the new-device mail on.
  env.TWOFOLD_DEVICES__VERIFY = 'false';
  env.TWOFOLD_DEVICES__NOTIFY = 'false';
  return env;
}

/**
 * Splits a log into development mail blocks: [{ to, text }], oldest first. Only the text between
 * the markers is used, so log prefixes on the marker line do not matter.
 */
function parseMails(log) {
  const mails = [];
  let from = 0;
  for (;;) {
    const s = log.indexOf(MAIL_START, from);
    if (s < 0) break;
    const e = log.indexOf(MAIL_END, s);
    if (e < 0) break; // still being written
    const text = log.slice(s + MAIL_START.length, e);
    const to = /^To: *(.+?)\s*$/m.exec(text);
    mails.push({ to: to ? to[1] : null, text });
    from = e + MAIL_END.length;
  }
  return mails;
}

/** A free TCP port on 127.0.0.1 (the OS picks it; it is free again by the time we return). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = require('node:net').createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `$TWOFOLD_BIN serve` for `backend` ('sqlite' or 'postgres'). Options: `env` (extra
 * environment for the server) and `localhost` (serve at http://localhost:PORT, the public URL
 * WebAuthn needs: browsers refuse IP addresses as relying-party ids). Resolves to
 * { baseUrl, log (getter: everything logged so far), mailCount(to), waitForMail(to, re, opts), stop() }.
 */
async function startServer(backend, opts = {}) {
  const bin = process.env.TWOFOLD_BIN;
  if (!bin) throw new Error('set TWOFOLD_BIN to the twofold binary (e.g. $HOME/.cache/twofold-target/debug/twofold)');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'twofold-e2e-'));
  const env = serverEnv();
  const adminUrl = process.env.TWOFOLD_TEST_POSTGRES_URL;
  let dbName = null;
  if (backend === 'postgres') {
    if (!adminUrl) throw new Error('the postgres backend needs TWOFOLD_TEST_POSTGRES_URL');
    dbName = 'twofold_e2e_' + crypto.randomBytes(6).toString('hex');
    psql(adminUrl, `CREATE DATABASE ${dbName}`);
    env.TWOFOLD_DATABASE__URL = withDatabase(adminUrl, dbName);
  } else if (backend !== 'sqlite') {
    throw new Error(`unknown backend ${backend}`);
  }

  Object.assign(env, opts.env || {});
  let listen = '127.0.0.1:0';
  if (opts.localhost) {
    const port = await freePort();
    listen = `127.0.0.1:${port}`;
    env.TWOFOLD_PUBLIC_URL = `http://localhost:${port}`;
  }
  const child = spawn(bin, ['serve', '--listen', listen, '--data-dir', path.join(dataDir, 'data')], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.setEncoding('utf8').on('data', (d) => { log += d; });
  child.stderr.setEncoding('utf8').on('data', (d) => { log += d; });
  let spawnError = null;
  child.on('error', (e) => { spawnError = e; });
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  let exit = null;
  exited.then((x) => { exit = x; });

  let cleanedUp = false;
  function cleanUp() {
    if (cleanedUp) return;
    cleanedUp = true;
    fs.rmSync(dataDir, { recursive: true, force: true });
    if (dbName) psql(adminUrl, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  }

  /** SIGTERM, wait for a graceful exit; SIGKILL and an error if it does not come. */
  async function stop() {
    try {
      if (exit === null && !spawnError) {
        child.kill('SIGTERM');
        let timer;
        const timedOut = await Promise.race([
          exited.then(() => false),
          new Promise((r) => { timer = setTimeout(() => r(true), STOP_TIMEOUT_MS); }),
        ]);
        clearTimeout(timer);
        if (timedOut) {
          child.kill('SIGKILL');
          await exited;
          throw new Error(`server did not exit within ${STOP_TIMEOUT_MS / 1000} s of SIGTERM; log:\n${log}`);
        }
        if (exit.code !== 0) {
          throw new Error(`server exited with ${exit.code ?? exit.signal} after SIGTERM; log:\n${log}`);
        }
      }
    } finally {
      cleanUp();
    }
  }

  let baseUrl;
  try {
    baseUrl = await new Promise((resolve, reject) => {
      const deadline = Date.now() + START_TIMEOUT_MS;
      const timer = setInterval(() => {
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
        if (m) { clearInterval(timer); resolve(opts.localhost ? m[1].replace('127.0.0.1', 'localhost') : m[1]); return; }
        let why = null;
        if (spawnError) why = `could not run ${bin}: ${spawnError.message}`;
        else if (exit !== null) why = `server exited (${exit.code ?? exit.signal}) before listening`;
        else if (Date.now() > deadline) why = `server did not log "listening on" within ${START_TIMEOUT_MS / 1000} s`;
        if (why) { clearInterval(timer); reject(new Error(`${why}; log:\n${log}`)); }
      }, 50);
    });
  } catch (e) {
    if (exit === null && !spawnError) { child.kill('SIGKILL'); await exited; }
    cleanUp();
    throw e;
  }

  const mailsTo = (to) => parseMails(log).filter((m) => m.to === to);

  /**
   * Waits up to 15 s for a development mail to `to` and returns the first match of `re` in it
   * (the whole match, e.g. the full link). `skip` (default 0) is how many earlier mails to `to`
   * to pass over: use `server.mailCount(to)` taken before the action that sends the mail.
   * For compatibility a number in place of `opts` means `{ skip: n }`.
   */
  async function waitForMail(to, re, opts = {}) {
    const skip = typeof opts === 'number' ? opts : (opts.skip ?? 0);
    const deadline = Date.now() + MAIL_TIMEOUT_MS;
    for (;;) {
      const mail = mailsTo(to)[skip];
      if (mail) {
        const m = mail.text.match(re);
        if (!m) throw new Error(`mail #${skip + 1} to ${to} has no match for ${re}:\n${mail.text}`);
        return m[0];
      }
      if (Date.now() > deadline) {
        throw new Error(`mail #${skip + 1} to ${to} did not arrive within ${MAIL_TIMEOUT_MS / 1000} s; log:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Runs a `twofold` command against this server's database and keys; returns stdout. */
  function cli(args) {
    return execFileSync(bin, [...args, '--data-dir', path.join(dataDir, 'data')], { env, encoding: 'utf8' });
  }

  return {
    backend,
    baseUrl,
    cli,
    get log() { return log; },
    mailCount: (to) => mailsTo(to).length,
    waitForMail,
    stop,
  };
}

module.exports = { startServer, backends, parseMails, freePort };
