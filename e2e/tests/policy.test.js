'use strict';
// Mandatory two-step verification in Chromium: with the policy requiring it for every account
// (deadline passed), a sign-in without 2FA lands on the forced set-up step, which reaches
// nothing else; adding an authenticator there signs the browser in. Then "remember this
// browser" lets the next sign-in skip the second step.
const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const { startServer, backends } = require('../lib/server');
const { launch, saveFailureArtifacts } = require('../lib/browser');
const flows = require('../lib/flows');

function totp(secret, offset = 0) {
  const at = Math.floor(Date.now() / 1000) + offset;
  return execFileSync('oathtool', ['--totp', '-b', '--now', `@${at}`, secret.replace(/\s+/g, '')]).toString().trim();
}

for (const backend of backends()) {
  describe(`mandatory 2FA (${backend})`, () => {
    let server;
    let browser;
    let pages = [];

    before(async () => {
      // Deadline in the past: existing accounts must have 2FA now.
      server = await startServer(backend, {
        env: { TWOFOLD_POLICY__REQUIRED: 'all', TWOFOLD_POLICY__ENFORCE_FROM: '2026-01-01' },
      });
      browser = await launch();
    });
    after(async () => {
      await browser?.close();
      await server?.stop();
    });
    afterEach(async (t) => {
      if (!t.passed) await saveFailureArtifacts(`policy-${backend}`, t, pages, server?.log);
      for (const p of pages) await p.context().close().catch(() => {});
      pages = [];
    });

    const url = (path) => `${server.baseUrl}${path}`;

    it('forces enrollment after the deadline, then remembers the browser', async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      pages.push(page);
      const email = `forced-${Date.now()}@example.com`;
      await flows.createVerifiedAccount(server, email);
      await flows.signIn(server, page, email);

      await page.waitForURL(/\/login\/set-up$/);
      await page.getByRole('heading', { name: 'Set up two-step verification' }).waitFor();
      // The set-up step is all this browser may reach.
      await page.goto(url('/account'));
      await page.waitForURL(/\/login\/set-up$/);
      const api = await page.request.get(url('/api/v1/account'));
      assert.equal(api.status(), 401);

      await page.getByRole('button', { name: 'Add authenticator app' }).click();
      await page.getByRole('heading', { name: 'Add an authenticator app' }).waitFor();
      const secret = (await page.locator('#secret').innerText()).trim();
      await page.getByLabel('Code from the app').fill(totp(secret));
      await page.getByRole('button', { name: 'Verify and turn on' }).click();
      await page.getByRole('heading', { name: 'Your backup codes' }).waitFor();
      await page.getByRole('link', { name: 'I have saved my codes' }).click();
      await page.getByText('Two-factor authentication is on').waitFor();
      const me = await (await page.request.get(url('/api/v1/account'))).json();
      assert.deepEqual(me.session.amr, ['pwd', 'otp', 'mfa']);

      // The only factor cannot be removed while the policy requires 2FA.
      await page.getByRole('button', { name: /^Remove / }).click();
      await page.getByText('Two-step verification is required for your account').waitFor();

      // Sign out, sign in with a code and "remember this browser".
      await page.getByRole('button', { name: 'Sign out', exact: true }).first().click();
      await page.waitForURL(/\/login/);
      await flows.signIn(server, page, email);
      await page.waitForURL(/\/login\/second-factor/);
      await page.getByLabel('Authentication code').fill(totp(secret, 30));
      await page.getByLabel(/Remember this browser/).first().check();
      await page.getByRole('button', { name: 'Verify', exact: true }).click();
      await page.waitForURL(/\/account$/);

      // The remembered browser skips the second step; the forced step never comes back.
      await page.getByRole('button', { name: 'Sign out', exact: true }).first().click();
      await page.waitForURL(/\/login/);
      await flows.signIn(server, page, email);
      await page.waitForURL(/\/account$/);
    });
  });
}
