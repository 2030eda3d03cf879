'use strict';
// Security keys and passkeys in Chromium, through its virtual authenticator (Chrome DevTools
// Protocol). The server runs at http://localhost:PORT: browsers refuse IP addresses as
// relying-party ids, and localhost counts as a secure context.
const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, backends } = require('../lib/server');
const { launch, saveFailureArtifacts, addVirtualAuthenticator } = require('../lib/browser');
const flows = require('../lib/flows');

for (const backend of backends()) {
  describe(`security keys and passkeys (${backend})`, () => {
    let server;
    let browser;
    let pages = [];

    before(async () => {
      server = await startServer(backend, { localhost: true });
      browser = await launch();
    });
    after(async () => {
      await browser?.close();
      await server?.stop();
    });
    afterEach(async (t) => {
      if (!t.passed) await saveFailureArtifacts(backend, t, pages, server?.log);
      for (const p of pages) await p.context().close().catch(() => {});
      pages = [];
    });

    async function newPage() {
      const page = await (await browser.newContext()).newPage();
      pages.push(page);
      return page;
    }

    async function signOut(page) {
      await page.getByRole('button', { name: 'Sign out', exact: true }).first().click();
      await page.waitForURL(/\/login/);
    }

    it('adds a security key as second factor, signs in with it, and refuses a replayed assertion', async () => {
      const page = await newPage();
      await page.goto(`${server.baseUrl}/login`);
      const { cdp, authenticatorId } = await addVirtualAuthenticator(page, 'usb');
      const email = `key-${Date.now()}@example.com`;
      await flows.createVerifiedAccount(server, email);
      await flows.signIn(server, page, email);
      await page.waitForURL(/\/account$/);

      await page.getByRole('link', { name: 'Security settings' }).first().click();
      await page.getByLabel('Name of the security key (optional)').fill('Desk key');
      await page.getByRole('button', { name: 'Add a security key' }).click();
      await page.getByRole('heading', { name: 'Your backup codes' }).waitFor();
      await page.getByRole('link', { name: 'I have saved my codes' }).click();
      await page.getByText('Two-factor authentication is on').waitFor();
      assert.equal(await page.getByLabel('Name of Desk key').inputValue(), 'Desk key');
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      assert.equal(credentials.length, 1);

      // The same key again: the browser refuses (it is in excludeCredentials), with a clear message.
      await page.getByRole('button', { name: 'Add a security key' }).click();
      await page.getByText('This security key or passkey is already registered.').waitFor();

      await signOut(page);
      await flows.signIn(server, page, email);
      await page.waitForURL(/\/login\/second-factor/);
      // Keep the assertion the browser posts, to replay it afterwards.
      let posted = null;
      await page.route('**/login/second-factor/key/finish', async (route) => {
        posted = route.request().postData();
        await route.continue();
      });
      await page.getByRole('button', { name: 'Use your security key or passkey' }).click();
      await page.waitForURL(/\/account$/);
      assert.ok(posted, 'the assertion was posted');

      // Replaying it from a fresh sign-in is refused: the ceremony was single use and bound to
      // the other partial session.
      await signOut(page);
      await flows.signIn(server, page, email);
      await page.waitForURL(/\/login\/second-factor/);
      const csrf = await page.locator('input[name=csrf]').first().inputValue();
      const replay = new URLSearchParams(posted);
      replay.set('csrf', csrf);
      const r = await page.request.post(`${server.baseUrl}/login/second-factor/key/finish`, {
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.baseUrl },
        data: replay.toString(),
        maxRedirects: 0,
      });
      assert.equal(r.status(), 400);
      assert.match(await r.text(), /expired or was already used/);

      // A clone of the key (same private key, older signature counter) is caught: the key is
      // blocked, the sign-in refused, and the owner told by mail.
      const [cred] = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
      assert.ok(cred.signCount >= 1, `counter ${cred.signCount}`);
      await cdp.send('WebAuthn.removeCredential', { authenticatorId, credentialId: cred.credentialId });
      await cdp.send('WebAuthn.addCredential', { authenticatorId, credential: { ...cred, signCount: 0 } });
      const mailsBefore = server.mailCount(email);
      await page.goto(`${server.baseUrl}/login/second-factor`);
      await page.getByRole('button', { name: 'Use your security key or passkey' }).click();
      await page.getByText('reported an old signature counter and was blocked').waitFor();
      const warning = await server.waitForMail(email, /signature counter lower than before/, { skip: mailsBefore });
      assert.ok(warning);
    });

    it('adds a passkey and signs in with it alone, no password', async () => {
      const page = await newPage();
      await page.goto(`${server.baseUrl}/login`);
      const { cdp, authenticatorId } = await addVirtualAuthenticator(page, 'internal');
      const email = `passkey-${Date.now()}@example.com`;
      await flows.createVerifiedAccount(server, email);
      await flows.signIn(server, page, email);
      await page.waitForURL(/\/account$/);
      await page.getByRole('link', { name: 'Security settings' }).first().click();
      await page.getByRole('button', { name: /Add a passkey/ }).click();
      await page.getByRole('heading', { name: 'Your backup codes' }).waitFor();
      await page.getByRole('link', { name: 'I have saved my codes' }).click();
      await page.getByText('Passkey', { exact: true }).first().waitFor();
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      assert.equal(credentials.length, 1);
      assert.equal(credentials[0].isResidentCredential, true, 'a passkey is discoverable');

      await signOut(page);
      // The login page may already have offered the passkey through autofill; otherwise press
      // the button.
      const autofilled = await page.waitForURL(/\/account$/, { timeout: 3_000 }).then(() => true, () => false);
      if (!autofilled) {
        await page.getByRole('button', { name: 'Sign in with a passkey' }).click({ timeout: 5_000 }).catch(() => {});
      }
      await page.waitForURL(/\/account$/, { timeout: 15_000 });
      const account = await page.request.get(`${server.baseUrl}/api/v1/account`);
      const body = await account.json();
      assert.deepEqual(body.session.amr, ['hwk', 'user', 'mfa']);
    });
  });
}

for (const backend of backends()) {
  describe(`a passkey sign-in and known devices (${backend})`, () => {
    let server;
    let browser;
    let pages = [];

    before(async () => {
      server = await startServer(backend, {
        localhost: true,
        env: { TWOFOLD_DEVICES__VERIFY: 'true', TWOFOLD_DEVICES__NOTIFY: 'true' },
      });
      browser = await launch();
    });
    after(async () => {
      await browser?.close();
      await server?.stop();
    });
    afterEach(async (t) => {
      if (!t.passed) await saveFailureArtifacts(`passkey-devices-${backend}`, t, pages, server?.log);
      for (const p of pages) await p.context().close().catch(() => {});
      pages = [];
    });

    async function newPage() {
      const page = await (await browser.newContext()).newPage();
      pages.push(page);
      return page;
    }

    it('a new browser signing in with a passkey needs no emailed code, becomes known and is announced', async () => {
      const email = `passkey-device-${Date.now()}@example.com`;
      await flows.createVerifiedAccount(server, email);
      const first = await newPage();
      await first.goto(`${server.baseUrl}/login`);
      const one = await addVirtualAuthenticator(first, 'internal');
      let skip = server.mailCount(email);
      await flows.signIn(server, first, email);
      await first.waitForURL(/\/login\/device$/);
      const code = (await server.waitForMail(email, /^ {4}(\d{6})$/m, { skip })).trim();
      await first.getByLabel('Code from the email').fill(code);
      await first.getByRole('button', { name: 'Continue' }).click();
      await first.waitForURL(/\/account$/);
      await first.goto(`${server.baseUrl}/account/security`);
      await first.getByRole('button', { name: /Add a passkey/ }).click();
      await first.getByRole('heading', { name: 'Your backup codes' }).waitFor();
      await first.getByRole('link', { name: 'I have saved my codes' }).click();
      const { credentials } = await one.cdp.send('WebAuthn.getCredentials', { authenticatorId: one.authenticatorId });

      // The same passkey in another browser (synchronised, as passkeys are).
      const second = await newPage();
      await second.goto(`${server.baseUrl}/password-reset`);
      const two = await addVirtualAuthenticator(second, 'internal');
      await two.cdp.send('WebAuthn.addCredential', { authenticatorId: two.authenticatorId, credential: credentials[0] });
      skip = server.mailCount(email);
      await second.goto(`${server.baseUrl}/login`);
      const autofilled = await second.waitForURL(/\/account$/, { timeout: 3_000 }).then(() => true, () => false);
      if (!autofilled) {
        await second.getByRole('button', { name: 'Sign in with a passkey' }).click({ timeout: 5_000 }).catch(() => {});
      }
      await second.waitForURL(/\/account$/, { timeout: 15_000 });
      const report = /http:\/\/localhost:\d+\/login\/report\?token=[A-Za-z0-9_-]+/;
      assert.ok(await server.waitForMail(email, report, { skip }), 'the owner is told of the new browser');
      await second.goto(`${server.baseUrl}/account/security`);
      await second.getByRole('heading', { name: 'Known devices' }).waitFor();
      assert.equal(await second.getByRole('button', { name: /^Forget device / }).count(), 2);

      // Known now: its password goes straight to the second step, no emailed code (the
      // authenticator goes first, or the sign-in page would use the passkey again).
      await second.getByRole('button', { name: 'Sign out', exact: true }).first().click();
      await second.waitForURL(/\/login/);
      await two.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: two.authenticatorId });
      await flows.signIn(server, second, email);
      await second.waitForURL(/\/login\/second-factor$/);
    });
  });
}

for (const backend of backends()) {
  describe(`security keys through the verification API (${backend})`, () => {
    let server;
    let browser;
    let pages = [];

    before(async () => {
      server = await startServer(backend, { localhost: true });
      browser = await launch();
    });
    after(async () => {
      await browser?.close();
      await server?.stop();
    });
    afterEach(async (t) => {
      if (!t.passed) await saveFailureArtifacts(backend, t, pages, server?.log);
      for (const p of pages) await p.context().close().catch(() => {});
      pages = [];
    });

    it('registers a subject\'s key and verifies assertions; a replay is invalid', async () => {
      const key = server.cli(['apikey', 'create', '--name', 'e2e']).trim().split('\n').at(-1);
      const api = async (path, body) => {
        const r = await fetch(`${server.baseUrl}/api/v1/subjects/alice${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify(body ?? {}),
        });
        return { status: r.status, body: await r.json() };
      };
      // The app's page: any page on the relying party's origin will do for the browser part
      // (not /login, whose passkey autofill keeps a request pending).
      const page = await (await browser.newContext()).newPage();
      pages.push(page);
      await page.goto(`${server.baseUrl}/password-reset`);
      await addVirtualAuthenticator(page, 'usb');

      const reg = await api('/webauthn/registrations', { kind: 'security_key' });
      assert.equal(reg.status, 200, JSON.stringify(reg.body));
      const credential = await page.evaluate(async (options) => {
        const c = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey) });
        return c.toJSON();
      }, reg.body.options);
      const done = await api(`/webauthn/registrations/${reg.body.registration_id}/finish`, { credential, label: 'Key' });
      assert.equal(done.status, 201, JSON.stringify(done.body));
      assert.equal(done.body.status, 'active');
      assert.equal(done.body.backup_codes.length, 10);

      const assertion = await api('/webauthn/assertions');
      assert.equal(assertion.status, 200);
      const signed = await page.evaluate(async (options) => {
        const c = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey) });
        return c.toJSON();
      }, assertion.body.options);
      const ok = await api(`/webauthn/assertions/${assertion.body.assertion_id}/finish`, { credential: signed });
      assert.deepEqual(ok.body, { valid: true, factor_id: done.body.id, type: 'webauthn' });
      const again = await api(`/webauthn/assertions/${assertion.body.assertion_id}/finish`, { credential: signed });
      assert.deepEqual(again.body, { valid: false });

      // The same key used from another origin (same relying-party id, another site) is refused:
      // the origin the browser signed is checked.
      const http = require('node:http');
      const foreign = http.createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end('<!doctype html><title>elsewhere</title>'); });
      await new Promise((r) => foreign.listen(0, '127.0.0.1', r));
      try {
        await page.goto(`http://localhost:${foreign.address().port}/`);
        const elsewhere = await api('/webauthn/assertions');
        const phished = await page.evaluate(async (options) => {
          const c = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey) });
          return c.toJSON();
        }, elsewhere.body.options);
        const refused = await api(`/webauthn/assertions/${elsewhere.body.assertion_id}/finish`, { credential: phished });
        assert.deepEqual(refused.body, { valid: false });
      } finally {
        foreign.close();
      }
      // …while the same key on the right origin still verifies.
      await page.goto(`${server.baseUrl}/password-reset`);
      const home = await api('/webauthn/assertions');
      const good = await page.evaluate(async (options) => {
        const c = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey) });
        return c.toJSON();
      }, home.body.options);
      const accepted = await api(`/webauthn/assertions/${home.body.assertion_id}/finish`, { credential: good });
      assert.equal(accepted.body.valid, true);
    });
  });
}

for (const backend of backends()) {
  describe(`removing a security key needs a fresh second factor (${backend})`, () => {
    let server;
    let browser;
    let pages = [];

    before(async () => {
      // Step-up freshness of 3 s instead of 5 minutes, so the test need not wait long.
      server = await startServer(backend, { localhost: true, env: { TWOFOLD_SESSION__STEP_UP_SECONDS: '3' } });
      browser = await launch();
    });
    after(async () => {
      await browser?.close();
      await server?.stop();
    });
    afterEach(async (t) => {
      if (!t.passed) await saveFailureArtifacts(backend, t, pages, server?.log);
      for (const p of pages) await p.context().close().catch(() => {});
      pages = [];
    });

    it('asks for the key again before removing it', async () => {
      const page = await (await browser.newContext()).newPage();
      pages.push(page);
      await page.goto(`${server.baseUrl}/password-reset`);
      await addVirtualAuthenticator(page, 'usb');
      const email = `remove-${Date.now()}@example.com`;
      await flows.createVerifiedAccount(server, email);
      await flows.signIn(server, page, email);
      await page.waitForURL(/\/account$/);
      await page.goto(`${server.baseUrl}/account/security`);
      await page.getByLabel('Name of the security key (optional)').fill('Travel key');
      await page.getByRole('button', { name: 'Add a security key' }).click();
      await page.getByRole('link', { name: 'I have saved my codes' }).click();
      await page.getByText('Two-factor authentication is on').waitFor();

      await new Promise((r) => setTimeout(r, 3500));
      await page.getByRole('button', { name: 'Remove Travel key' }).click();
      await page.waitForURL(/\/account\/step-up/);
      await page.getByRole('button', { name: 'Use your security key or passkey' }).click();
      await page.waitForURL(/\/account\/security$/);
      await page.getByRole('button', { name: 'Remove Travel key' }).click();
      await page.getByText('Two-factor authentication is off').waitFor();
      const mail = await server.waitForMail(email, /A security key \("Travel key"\) was added|Travel key/, { skip: 1 });
      assert.ok(mail);
    });
  });
}

for (const backend of backends()) {
  describe(`allowed authenticator models (${backend})`, () => {
    // Chromium's virtual authenticator reports this AAGUID.
    const VIRTUAL = '01020304-0506-0708-0102-030405060708';

    async function tryToRegister(allowed) {
      const server = await startServer(backend, { localhost: true, env: { TWOFOLD_WEBAUTHN__ALLOWED_AAGUIDS: allowed } });
      const browser = await launch();
      try {
        const page = await (await browser.newContext()).newPage();
        await page.goto(`${server.baseUrl}/password-reset`);
        await addVirtualAuthenticator(page, 'usb');
        const email = `model-${Date.now()}@example.com`;
        await flows.createVerifiedAccount(server, email);
        await flows.signIn(server, page, email);
        await page.waitForURL(/\/account$/);
        await page.goto(`${server.baseUrl}/account/security`);
        await page.getByRole('button', { name: 'Add a security key' }).click();
        const outcome = page.getByRole('heading', { name: 'Your backup codes' })
          .or(page.getByText('This kind of security key is not allowed here'));
        await outcome.first().waitFor();
        return await page.getByRole('heading', { name: 'Your backup codes' }).isVisible();
      } finally {
        await browser.close();
        await server.stop();
      }
    }

    it('registers a listed model and refuses any other', async () => {
      assert.equal(await tryToRegister(VIRTUAL), true, 'a listed model registers');
      assert.equal(await tryToRegister('cb69481e-8ff7-4039-93ec-0a2729a154a8'), false, 'another model is refused');
    });
  });
}
