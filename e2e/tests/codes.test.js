'use strict';
// Codes by text message and by email, end to end in Chromium: add a phone (the code read off
// a stand-in Twilio) and sign in with a texted code; add an email address and approve a
// sign-in through the emailed link from a second browser, which itself stays signed out while
// the first window goes on by itself.
const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, backends } = require('../lib/server');
const { launch, saveFailureArtifacts } = require('../lib/browser');
const { startSmsGateway } = require('../lib/sms_gateway');
const flows = require('../lib/flows');

for (const backend of backends()) {
  describe(`codes by SMS and email (${backend})`, () => {
    let server;
    let gateway;
    let browser;
    let pages = [];

    before(async () => {
      gateway = await startSmsGateway();
      // No resend cooldown: the suite runs on the real clock and asks for codes back to back.
      server = await startServer(backend, {
        env: { ...gateway.env, TWOFOLD_SECOND_FACTOR__RESEND_COOLDOWN_SECONDS: '0' },
      });
      browser = await launch();
    });
    after(async () => {
      await browser?.close();
      await server?.stop();
      await gateway?.close();
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

    it('turns on text-message codes and signs in with one', async () => {
      const page = await newPage();
      const email = `sms-${Date.now()}@example.com`;
      await flows.createVerifiedAccount(server, email);
      await flows.signIn(server, page, email);
      await page.waitForURL(/\/account$/);

      await page.getByRole('link', { name: 'Security settings' }).first().click();
      await page.getByRole('link', { name: 'Add a phone number (codes by text message)' }).click();
      await page.getByLabel('Mobile phone number').fill('+1 415 555 8318');
      await page.getByRole('button', { name: 'Send code' }).click();
      await page.getByRole('heading', { name: 'Enter the code we sent' }).waitFor();
      assert.ok((await page.content()).includes('+1 ••• ••• 8318'));
      const text = gateway.requests.find((r) => r.form.get('To') === '+14155558318');
      const basic = Buffer.from('ACtest:test-token').toString('base64');
      await gateway.waitForCode('+14155558318', 0);
      assert.equal(gateway.requests.at(-1).headers.authorization, `Basic ${basic}`);
      assert.ok(text === undefined || text.path === '/2010-04-01/Accounts/ACtest/Messages.json');
      await page.getByLabel('Code').fill(await gateway.waitForCode('+14155558318', 0));
      await page.getByRole('button', { name: 'Turn on' }).click();
      await page.getByRole('heading', { name: 'Your backup codes' }).waitFor();
      await page.getByRole('link', { name: 'I have saved my codes' }).click();
      await page.getByText('Text messages to +1 ••• ••• 8318').waitFor();
      // The number's middle digits in any spelling; a bare '555' can occur in a random token.
      const html = (await page.content()).replace(/[\s()-]/g, '');
      assert.ok(!html.includes('4155558318') && !html.includes('5558318'), 'the full number is never shown');

      await signOut(page);
      await flows.signIn(server, page, email);
      await page.waitForURL(/\/login\/second-factor/);
      await page.getByRole('button', { name: 'Text a code to +1 ••• ••• 8318' }).click();
      await page.getByText('We sent a text message with a code to').waitFor();
      await page.getByLabel('Authentication code').fill(await gateway.waitForCode('+14155558318', 1));
      await page.getByLabel('Remember this browser for 30 days').first().check();
      await page.getByRole('button', { name: 'Verify' }).click();
      await page.waitForURL(/\/account$/);

      // Remembered: the password alone signs this browser in now; the list shows it.
      await signOut(page);
      await flows.signIn(server, page, email);
      await page.waitForURL(/\/account$/);
      await page.getByRole('link', { name: 'Security settings' }).first().click();
      await page.getByRole('heading', { name: 'Remembered browsers' }).waitFor();
    });

    it('approves a sign-in from the emailed link in another browser; only the waiting window signs in', async () => {
      const page = await newPage();
      const email = `link-${Date.now()}@example.com`;
      const codesTo = `codes.${Math.random().toString(36).slice(2, 10)}@example.net`;
      await flows.createVerifiedAccount(server, email);
      await flows.signIn(server, page, email);
      await page.waitForURL(/\/account$/);
      await page.getByRole('link', { name: 'Security settings' }).first().click();
      await page.getByRole('link', { name: 'Add email codes' }).click();
      assert.equal(await page.getByLabel('Email address for codes').inputValue(), email);
      await page.getByLabel('Email address for codes').fill(codesTo);
      await page.getByRole('button', { name: 'Send code' }).click();
      await page.getByRole('heading', { name: 'Enter the code we sent' }).waitFor();
      const code = (await server.waitForMail(codesTo, /Subject: Your Twofold code: \d{6}/)).slice(-6);
      await page.getByLabel('Code').fill(code);
      await page.getByRole('button', { name: 'Turn on' }).click();
      await page.getByRole('heading', { name: 'Your backup codes' }).waitFor();
      await page.getByRole('link', { name: 'I have saved my codes' }).click();
      await signOut(page);

      // Window A signs in and asks for an email code.
      await flows.signIn(server, page, email);
      await page.waitForURL(/\/login\/second-factor/);
      await page.getByRole('button', { name: /^Email a code to c•••@example\.net$/ }).click();
      await page.getByText('We sent an email with a code to').waitFor();
      const link = await server.waitForMail(codesTo, /http:\/\/\S+\/login\/email-link\?token=[A-Za-z0-9_-]+/, { skip: 1 });

      // Browser B opens the link and approves.
      const other = await newPage();
      await other.goto(link);
      await other.getByRole('button', { name: 'Approve sign-in' }).click();
      await other.getByText('Approved — return to the window where you signed in').waitFor();
      await other.goto(`${server.baseUrl}/account`);
      assert.match(other.url(), /\/login/, 'the approving browser is not signed in');

      // Window A goes on by itself.
      await page.waitForURL(/\/account$/, { timeout: 15_000 });
      await page.getByRole('heading', { name: /account/i }).first().waitFor();
    });
  });
}
