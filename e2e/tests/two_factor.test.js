'use strict';
// An authenticator app end to end in Chromium: enrol it from Security settings (reading the key
// off the page and computing codes with oathtool, an independent TOTP implementation), sign out,
// sign in with a code, then with a backup code.
const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const { startServer, backends } = require('../lib/server');
const { launch, saveFailureArtifacts } = require('../lib/browser');

const flows = require('../lib/flows');

/** The TOTP code for `secret` (base32) `offset` seconds from now, from oathtool. */
function totp(secret, offset = 0) {
  const at = Math.floor(Date.now() / 1000) + offset;
  return execFileSync('oathtool', ['--totp', '-b', '--now', `@${at}`, secret.replace(/\s+/g, '')]).toString().trim();
}

for (const backend of backends()) {
  describe(`two-factor authentication (${backend})`, () => {
    let server;
    let browser;
    let pages = [];

    before(async () => {
      server = await startServer(backend);
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

    const url = (path) => `${server.baseUrl}${path}`;

    const createVerifiedAccount = (email) => flows.createVerifiedAccount(server, email);
    const signIn = (page, email) => flows.signIn(server, page, email);

    async function signOut(page) {
      await page.getByRole('button', { name: 'Sign out', exact: true }).first().click();
      await page.waitForURL(/\/login/);
    }

    it('enrols an authenticator, then signs in with a code and with a backup code', async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      pages.push(page);
      const email = `tfa-${Date.now()}@example.com`;
      await createVerifiedAccount(email);
      await signIn(page, email);
      await page.waitForURL(/\/account$/);

      await page.getByRole('link', { name: 'Security settings' }).first().click();
      await page.getByText('Two-factor authentication is off').waitFor();
      await page.getByRole('button', { name: 'Add authenticator app' }).click();
      await page.getByRole('heading', { name: 'Add an authenticator app' }).waitFor();
      assert.ok(await page.locator('.qr svg').isVisible(), 'the QR code is shown');
      const secret = (await page.locator('#secret').innerText()).trim();
      assert.match(secret, /^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$/, 'the key is shown in groups of four');
      await page.getByLabel('Name').fill('Test phone');
      await page.getByLabel('Code from the app').fill(totp(secret));
      await page.getByRole('button', { name: 'Verify and turn on' }).click();

      await page.getByRole('heading', { name: 'Your backup codes' }).waitFor();
      const codes = await page.locator('ul.codes code').allInnerTexts();
      assert.equal(codes.length, 10);
      assert.ok(await page.getByRole('link', { name: 'Download as .txt' }).isVisible());
      await page.getByRole('link', { name: 'I have saved my codes' }).click();
      await page.getByText('Two-factor authentication is on').waitFor();
      assert.equal(await page.getByLabel('Name of Test phone').inputValue(), 'Test phone');

      // Sign in again: password, then a code. The enrolment used up the current step, so the
      // code is the next step's (inside the ±1 window).
      await signOut(page);
      await signIn(page, email);
      await page.waitForURL(/\/login\/second-factor$/);
      await page.getByLabel('Authentication code').fill('000000');
      await page.getByRole('button', { name: 'Verify' }).click();
      await page.getByRole('alert').getByText('That code is not correct.').waitFor();
      await page.getByLabel('Authentication code').fill(totp(secret, 30));
      await page.getByRole('button', { name: 'Verify' }).click();
      await page.waitForURL(/\/account$/);
      await page.getByRole('heading', { name: 'Your account' }).waitFor();

      // And with a backup code instead.
      await signOut(page);
      await signIn(page, email);
      await page.waitForURL(/\/login\/second-factor$/);
      await page.getByRole('link', { name: 'Use a backup code' }).click();
      await page.getByLabel('Backup code').fill(codes[0]);
      await page.getByRole('button', { name: 'Verify' }).click();
      await page.waitForURL(/\/account\?backup_codes_left=9$/);
      await page.getByText('9 unused backup codes are left').waitFor();
      await page.goto(url('/account/security'));
      await page.getByText('9 unused backup codes left').waitFor();
    });
  });
}
