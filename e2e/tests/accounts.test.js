'use strict';
// Sign-up, verification, sign-in, security settings, sign-out, forgotten password and session
// revocation, as a person does them in Chromium, on each storage backend.
const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, backends } = require('../lib/server');
const { launch, screenshotOnFailure } = require('../lib/browser');

const PASSWORD = 'correct horse battery staple 42';
const NEW_PASSWORD = 'violet tractor harbour lemonade 8';
let counter = 0;
const freshEmail = (tag) => `${tag}-${Date.now()}-${counter++}@example.com`;

for (const backend of backends()) {
  describe(`accounts (${backend})`, () => {
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
      if (t.passed === false || t.error) await screenshotOnFailure(t, pages);
      for (const p of pages) await p.context().close().catch(() => {});
      pages = [];
    });

    async function newPage() {
      const context = await browser.newContext();
      const page = await context.newPage();
      pages.push(page);
      return page;
    }

    async function signUpAndVerify(page, email) {
      await page.goto(`${server.baseUrl}/signup`);
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Create account' }).click();
      await page.getByRole('heading', { name: 'Check your email' }).waitFor();
      const link = await server.waitForMail(email, /http:\/\/\S+\/verify-email\?token=[A-Za-z0-9_-]+/);
      await page.goto(link);
      await page.getByRole('button', { name: 'Verify email address' }).click();
      await page.getByText('Your email address is verified').waitFor();
    }

    async function signIn(page, email, password = PASSWORD) {
      await page.goto(`${server.baseUrl}/login`);
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
    }

    it('signs up, verifies, signs in, reaches security settings and signs out', async () => {
      const page = await newPage();
      const email = freshEmail('flow');
      await signUpAndVerify(page, email);
      await signIn(page, email);
      await page.waitForURL(/\/account$/);
      await page.getByRole('heading', { name: 'Your account' }).waitFor();
      assert.ok(await page.getByText(email).isVisible());

      await page.getByRole('link', { name: 'Security settings' }).first().click();
      await page.waitForURL(/\/account\/security$/);
      await page.getByRole('heading', { name: 'Security settings' }).waitFor();
      await page.getByRole('heading', { name: 'Active sessions' }).waitFor();
      assert.ok(await page.getByText('This browser').isVisible());

      await page.getByRole('button', { name: 'Sign out', exact: true }).first().click();
      await page.waitForURL(/\/login/);
      await page.getByText('You have been signed out.').waitFor();
      await page.goto(`${server.baseUrl}/account`);
      await page.waitForURL(/\/login/);
    });

    it('shows a clear message for a wrong password and stays on the login page', async () => {
      const page = await newPage();
      await signIn(page, freshEmail('nobody'), 'not the right password');
      const alert = page.getByRole('alert');
      await alert.waitFor();
      assert.match(await alert.innerText(), /Incorrect email or password/);
      assert.match(page.url(), /\/login$/);
    });

    it('resets a forgotten password: everyone signed out, nobody signed in, link works once', async () => {
      const a = await newPage();
      const email = freshEmail('reset');
      await signUpAndVerify(a, email);
      await signIn(a, email);
      await a.waitForURL(/\/account$/);

      const b = await newPage();
      await b.goto(`${server.baseUrl}/login`);
      await b.getByRole('link', { name: 'Forgot password?' }).click();
      await b.waitForURL(/\/password-reset$/);
      await b.getByLabel('Email').fill(email);
      await b.getByRole('button', { name: 'Send reset link' }).click();
      await b.getByText('If an account exists for that address').waitFor();

      const link = await server.waitForMail(email, /http:\/\/\S+\/password-reset\?token=[A-Za-z0-9_-]+/, 1);
      await b.goto(link);
      await b.getByLabel('New password').fill(NEW_PASSWORD);
      await b.getByRole('button', { name: 'Set new password' }).click();
      await b.getByText('Your password has been changed').waitFor();

      await b.goto(`${server.baseUrl}/account`);
      await b.waitForURL(/\/login/);
      await a.reload();
      await a.waitForURL(/\/login/);

      await signIn(b, email, PASSWORD);
      await b.getByRole('alert').waitFor();
      await signIn(b, email, NEW_PASSWORD);
      await b.waitForURL(/\/account$/);

      await b.goto(link);
      await b.getByText('This link is invalid or has expired').waitFor();
    });

    it('revokes another session from security settings', async () => {
      const a = await newPage();
      const email = freshEmail('revoke');
      await signUpAndVerify(a, email);
      await signIn(a, email);
      await a.waitForURL(/\/account$/);
      const b = await newPage();
      await signIn(b, email);
      await b.waitForURL(/\/account$/);

      await a.goto(`${server.baseUrl}/account/security`);
      const rows = a.locator('section[aria-labelledby="sessions-heading"] tbody tr');
      assert.equal(await rows.count(), 2);
      const other = rows.filter({ hasNotText: 'This browser' });
      await other.getByRole('button', { name: /^Revoke/ }).click();
      await a.getByText('The session was revoked.').waitFor();
      assert.equal(await rows.count(), 1);

      await b.goto(`${server.baseUrl}/account`);
      await b.waitForURL(/\/login/);
    });
  });
}
