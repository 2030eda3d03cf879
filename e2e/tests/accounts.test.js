'use strict';
// Sign-up, verification, sign-in, security settings, sign-out, forgotten password and session
// revocation, as a person does them in Chromium, on each storage backend.
const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, backends } = require('../lib/server');
const { launch, saveFailureArtifacts } = require('../lib/browser');

const flows = require('../lib/flows');

const { PASSWORD, VERIFY_LINK } = flows;
const NEW_PASSWORD = 'violet tractor harbour lemonade 8';
const RESET_LINK = /http:\/\/127\.0\.0\.1:\d+\/password-reset\?token=[A-Za-z0-9_-]+/;
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
      if (!t.passed) await saveFailureArtifacts(backend, t, pages, server?.log);
      for (const p of pages) await p.context().close().catch(() => {});
      pages = [];
    });

    /** A page in a new browser context: its own cookies, i.e. another browser. */
    async function newPage() {
      const context = await browser.newContext();
      const page = await context.newPage();
      pages.push(page);
      return page;
    }

    const url = (path) => `${server.baseUrl}${path}`;
    const pathIs = (page, path) => assert.equal(new URL(page.url()).pathname, path);

    async function signUpAndVerify(page, email) {
      await page.goto(url('/signup'));
      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await page.getByRole('button', { name: 'Create account' }).click();
      await page.getByRole('heading', { name: 'Check your email' }).waitFor();
      const link = await server.waitForMail(email, VERIFY_LINK);
      await page.goto(link);
      await page.getByRole('button', { name: 'Verify email address' }).click();
      await page.getByText('Your email address is verified').waitFor();
    }

    const createVerifiedAccount = (email) => flows.createVerifiedAccount(server, email);
    const signIn = (page, email, password) => flows.signIn(server, page, email, password);

    async function signedIn(page, email, password = PASSWORD) {
      await signIn(page, email, password);
      await page.waitForURL(url('/account'));
      await page.getByRole('heading', { name: 'Your account' }).waitFor();
    }

    async function expectSignInPage(page) {
      await page.waitForURL((u) => u.pathname === '/login');
      await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    }

    it('signs up, verifies, signs in, reaches security settings and signs out', async () => {
      const page = await newPage();
      const email = freshEmail('flow');
      await signUpAndVerify(page, email);

      await signIn(page, email);
      await page.waitForURL(url('/account'));
      await page.getByRole('heading', { name: 'Your account' }).waitFor();
      await page.getByText(email, { exact: true }).waitFor();

      await page.getByRole('link', { name: 'Security settings' }).first().click();
      await page.waitForURL(url('/account/security'));
      await page.getByRole('heading', { name: 'Security settings' }).waitFor();
      const sessions = page.getByRole('region', { name: 'Active sessions' });
      await sessions.waitFor();
      assert.equal(await sessions.getByRole('row').filter({ hasText: 'This browser' }).count(), 1,
        'one row of "Active sessions" is marked "This browser"');

      await page.getByRole('button', { name: 'Sign out', exact: true }).first().click();
      await expectSignInPage(page);
      await page.getByText('You have been signed out.').waitFor();
      await page.goto(url('/account'));
      await expectSignInPage(page);
    });

    it('shows a clear message for a wrong password and stays on the login page', async () => {
      const page = await newPage();
      const email = freshEmail('wrong');
      await createVerifiedAccount(email);
      await signIn(page, email, 'not the right password');
      const alert = page.getByRole('alert');
      await alert.waitFor();
      assert.match(await alert.innerText(), /Incorrect email or password/);
      pathIs(page, '/login');
      // An unknown address gets exactly the same answer.
      await signIn(page, freshEmail('nobody'), PASSWORD);
      await alert.waitFor();
      assert.match(await alert.innerText(), /Incorrect email or password/);
      pathIs(page, '/login');
    });

    it('resets a forgotten password: everyone signed out, nobody signed in, link works once', async () => {
      const email = freshEmail('reset');
      await createVerifiedAccount(email);
      const a = await newPage();
      await signedIn(a, email);

      const b = await newPage();
      await b.goto(url('/login'));
      await b.getByRole('link', { name: 'Forgot password?' }).click();
      await b.waitForURL(url('/password-reset'));
      await b.getByLabel('Email', { exact: true }).fill(email);
      const seen = server.mailCount(email);
      await b.getByRole('button', { name: 'Send reset link' }).click();
      await b.getByText('If an account exists for that address').waitFor();

      const link = await server.waitForMail(email, RESET_LINK, { skip: seen });
      await b.goto(link);
      await b.getByLabel('New password').fill(NEW_PASSWORD);
      await b.getByRole('button', { name: 'Set new password' }).click();
      await b.getByText('Your password has been changed').waitFor();

      // Resetting signs nobody in, and signs out every existing session.
      await b.goto(url('/account'));
      await expectSignInPage(b);
      await a.reload();
      await expectSignInPage(a);

      await signIn(b, email, PASSWORD);
      await b.getByRole('alert').filter({ hasText: 'Incorrect email or password' }).waitFor();
      pathIs(b, '/login');
      await signedIn(b, email, NEW_PASSWORD);

      await b.goto(link);
      await b.getByText('This link is invalid or has expired').waitFor();
    });

    it('revokes another session from security settings', async () => {
      const email = freshEmail('revoke');
      await createVerifiedAccount(email);
      const a = await newPage();
      await signedIn(a, email);
      const b = await newPage();
      await signedIn(b, email);

      await a.goto(url('/account/security'));
      const sessions = a.getByRole('region', { name: 'Active sessions' });
      // Body rows only: the header row has column headers, not cells.
      const rows = sessions.getByRole('row').filter({ has: a.getByRole('cell') });
      assert.equal(await rows.count(), 2, 'two active sessions are listed');
      const other = rows.filter({ hasNotText: 'This browser' });
      assert.equal(await other.count(), 1, 'exactly one row is not "This browser"');
      await other.getByRole('button', { name: /^Revoke/ }).click();
      await a.getByText('The session was revoked.').waitFor();
      assert.equal(await rows.count(), 1, 'one active session is left');
      assert.equal(await rows.filter({ hasText: 'This browser' }).count(), 1);

      await b.goto(url('/account'));
      await expectSignInPage(b);
      // A itself is still signed in.
      await a.goto(url('/account'));
      await a.getByRole('heading', { name: 'Your account' }).waitFor();
    });
  });
}
