'use strict';
// Known devices in Chromium, with verification on (the product default): a new browser needs
// the code we email after the password, a known one goes straight in, "Send a new code"
// replaces the code, and the new-device mail's "this wasn't me" link signs every browser out
// and opens the password-reset form.
const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, backends } = require('../lib/server');
const { launch, saveFailureArtifacts } = require('../lib/browser');
const flows = require('../lib/flows');

const CODE = /^ {4}(\d{6})$/m;
const REPORT_LINK = /http:\/\/127\.0\.0\.1:\d+\/login\/report\?token=[A-Za-z0-9_-]+/;

for (const backend of backends()) {
  describe(`known devices (${backend})`, () => {
    let server;
    let browser;
    let pages = [];

    before(async () => {
      server = await startServer(backend, {
        env: {
          TWOFOLD_DEVICES__VERIFY: 'true',
          TWOFOLD_DEVICES__NOTIFY: 'true',
          TWOFOLD_SECOND_FACTOR__RESEND_COOLDOWN_SECONDS: '0',
        },
      });
      browser = await launch();
    });
    after(async () => {
      await browser?.close();
      await server?.stop();
    });
    afterEach(async (t) => {
      if (!t.passed) await saveFailureArtifacts(`devices-${backend}`, t, pages, server?.log);
      for (const p of pages) await p.context().close().catch(() => {});
      pages = [];
    });

    const url = (path) => `${server.baseUrl}${path}`;
    const newPage = async () => {
      const page = await (await browser.newContext()).newPage();
      pages.push(page);
      return page;
    };
    const codeFrom = async (email, skip) => (await server.waitForMail(email, CODE, { skip })).trim();

    it('asks a new browser for the emailed code, then knows it; "this wasn\'t me" undoes it', async () => {
      const email = `device-${Date.now()}@example.com`;
      await flows.createVerifiedAccount(server, email);

      // First browser: password, then the code from the mail.
      const first = await newPage();
      let skip = server.mailCount(email);
      await flows.signIn(server, first, email);
      await first.waitForURL(/\/login\/device$/);
      await first.getByRole('heading', { name: "Confirm it's you" }).waitFor();
      await first.getByText(/We sent a code to d•••@example\.com/).waitFor();
      const code = await codeFrom(email, skip);
      // Nothing else is reachable before the code.
      assert.equal((await first.request.get(url('/api/v1/account'))).status(), 401);
      await first.getByLabel('Code from the email').fill(code === '000000' ? '111111' : '000000');
      await first.getByRole('button', { name: 'Continue' }).click();
      await first.getByText('That code is not correct, or it has expired').waitFor();
      await first.getByLabel('Code from the email').fill(code);
      await first.getByRole('button', { name: 'Continue' }).click();
      await first.waitForURL(/\/account$/);
      // The owner is told, with a way back.
      const report = await server.waitForMail(email, REPORT_LINK, { skip: skip + 1 });
      await first.goto(url('/account/security'));
      await first.getByRole('heading', { name: 'Known devices' }).waitFor();
      assert.equal(await first.getByRole('button', { name: /^Forget device / }).count(), 1);

      // Signing in again in this browser needs no code.
      await first.getByRole('button', { name: 'Sign out', exact: true }).first().click();
      await first.waitForURL(/\/login/);
      skip = server.mailCount(email);
      await flows.signIn(server, first, email);
      await first.waitForURL(/\/account$/);
      assert.equal(server.mailCount(email), skip, 'no mail for a known browser');

      // A second browser: "Send a new code" makes the first code useless.
      const second = await newPage();
      skip = server.mailCount(email);
      await flows.signIn(server, second, email);
      await second.waitForURL(/\/login\/device$/);
      const oldCode = await codeFrom(email, skip);
      await second.getByRole('button', { name: 'Send a new code' }).click();
      await second.getByText('We sent a new code').waitFor();
      const newCode = await codeFrom(email, skip + 1);
      if (newCode !== oldCode) {
        await second.getByLabel('Code from the email').fill(oldCode);
        await second.getByRole('button', { name: 'Continue' }).click();
        await second.getByText('That code is not correct, or it has expired').waitFor();
      }
      await second.getByLabel('Code from the email').fill(newCode);
      await second.getByRole('button', { name: 'Continue' }).click();
      await second.waitForURL(/\/account$/);

      // "This wasn't me", opened from the mail in a third browser.
      const third = await newPage();
      await third.goto(report);
      await third.getByRole('heading', { name: 'Secure your account' }).waitFor();
      await third.getByRole('button', { name: 'Sign out everywhere and choose a new password' }).click();
      await third.getByRole('heading', { name: 'Choose a new password' }).waitFor();
      for (const p of [first, second]) {
        assert.equal((await p.request.get(url('/api/v1/account'))).status(), 401);
      }
      await third.getByLabel('New password').fill('a brand new passphrase 42');
      await third.getByRole('button', { name: 'Set new password' }).click();
      await third.getByRole('heading', { name: 'Your password has been changed' }).waitFor();

      // The first browser is forgotten: a code again. The third, which reset the password, is known.
      skip = server.mailCount(email);
      await flows.signIn(server, first, email, 'a brand new passphrase 42');
      await first.waitForURL(/\/login\/device$/);
      await flows.signIn(server, third, email, 'a brand new passphrase 42');
      await third.waitForURL(/\/account$/);
    });
  });
}
