'use strict';
// "Phishing-resistant required for operator accounts" in Chromium: an operator without a key is
// sent to add one at sign-in (and is offered nothing else), adds a passkey through the virtual
// authenticator (user verification on; a plain security key is not offered), and from then on
// signs in with it; the session says so.
const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, backends } = require('../lib/server');
const { launch, saveFailureArtifacts, addVirtualAuthenticator } = require('../lib/browser');
const flows = require('../lib/flows');

for (const backend of backends()) {
  describe(`operators held to keys (${backend})`, () => {
    let server;
    let browser;
    let pages = [];

    before(async () => {
      server = await startServer(backend, {
        localhost: true,
        env: { TWOFOLD_POLICY__OPERATORS_PHISHING_RESISTANT: 'true' },
      });
      browser = await launch();
    });
    after(async () => {
      await browser?.close();
      await server?.stop();
    });
    afterEach(async (t) => {
      if (!t.passed) await saveFailureArtifacts(`operators-${backend}`, t, pages, server?.log);
      for (const p of pages) await p.context().close().catch(() => {});
      pages = [];
    });

    it('sends a keyless operator to add a passkey, then signs in with it', async () => {
      const page = await (await browser.newContext()).newPage();
      pages.push(page);
      await page.goto(`${server.baseUrl}/login`);
      await addVirtualAuthenticator(page);
      const email = `operator-${Date.now()}@example.com`;
      await flows.createVerifiedAccount(server, email);
      server.cli(['user', 'promote', email]);

      await flows.signIn(server, page, email);
      await page.waitForURL(/\/login\/set-up$/);
      assert.equal(await page.getByRole('button', { name: 'Add authenticator app' }).count(), 0);
      assert.equal(await page.getByRole('button', { name: 'Add a security key' }).count(), 0);
      await page.getByRole('button', { name: /^Add a passkey/ }).click();
      await page.getByRole('heading', { name: 'Your backup codes' }).waitFor();
      await page.getByRole('link', { name: 'I have saved my codes' }).click();
      await page.getByText('Two-factor authentication is on').waitFor();

      await page.getByRole('button', { name: 'Sign out', exact: true }).first().click();
      await page.waitForURL(/\/login/);
      // The login page may already have offered the passkey through autofill; otherwise press
      // the button.
      const autofilled = await page.waitForURL(/\/account$/, { timeout: 3_000 }).then(() => true, () => false);
      if (!autofilled) {
        await page.getByRole('button', { name: 'Sign in with a passkey' }).click({ timeout: 5_000 }).catch(() => {});
      }
      await page.waitForURL(/\/account$/, { timeout: 15_000 });
      const me = await (await page.request.get(`${server.baseUrl}/api/v1/account`)).json();
      assert.ok(me.session.amr.includes('user'), `user verification in amr: ${me.session.amr}`);
      assert.ok(me.session.amr.some((m) => m === 'hwk' || m === 'swk'), `key in amr: ${me.session.amr}`);
    });
  });
}
