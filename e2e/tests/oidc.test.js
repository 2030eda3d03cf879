'use strict';
// Twofold as an OpenID Connect provider in Chromium, for a relying party written with Node's
// own crypto (lib/relying_party.js): the app sends the browser to sign in, the sign-in form's
// navigation ends back at the app (the CSP's form-action 'self' must not stop it), the app
// verifies the ID token; a third-party app asks for consent; acr_values=phr makes a passkey
// step-up happen and the ID token says "phr".
const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, backends, freePort } = require('../lib/server');
const { launch, saveFailureArtifacts, addVirtualAuthenticator } = require('../lib/browser');
const { startRelyingParty } = require('../lib/relying_party');
const flows = require('../lib/flows');

function addClient(server, port, extra = []) {
  const out = server.cli(['client', 'add', '--name', 'Acme Shop',
    '--redirect-uri', `http://127.0.0.1:${port}/callback`, ...extra]);
  const lines = out.trim().split('\n');
  return { clientId: /client_id: (\S+)/.exec(out)[1], clientSecret: lines[lines.length - 1].trim() };
}

for (const backend of backends()) {
  describe(`OpenID Connect provider (${backend})`, () => {
    let server;
    let browser;
    let pages = [];
    const rps = [];

    before(async () => {
      server = await startServer(backend, { localhost: true });
      browser = await launch();
    });
    after(async () => {
      for (const rp of rps) await rp.close();
      await browser?.close();
      await server?.stop();
    });
    afterEach(async (t) => {
      if (!t.passed) await saveFailureArtifacts(`oidc-${backend}`, t, pages, server?.log);
      for (const p of pages) await p.context().close().catch(() => {});
      pages = [];
    });

    const newPage = async () => {
      const page = await (await browser.newContext()).newPage();
      pages.push(page);
      return page;
    };
    const relyingParty = async (extra) => {
      const port = await freePort();
      const { clientId, clientSecret } = addClient(server, port, extra);
      const rp = await startRelyingParty({ issuer: server.baseUrl, clientId, clientSecret, port });
      rps.push(rp);
      return rp;
    };

    it('signs a user in for an application and hands the browser back after the form', async () => {
      const rp = await relyingParty();
      const email = `rp-${Date.now()}@example.com`;
      await flows.createVerifiedAccount(server, email);
      const page = await newPage();
      await page.goto(`${rp.url}/start`);
      await page.waitForURL(/\/login$/);
      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByLabel('Password', { exact: true }).fill(flows.PASSWORD);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.waitForURL(`${rp.url}/callback**`);
      await page.getByRole('heading', { name: 'Signed in' }).waitFor();
      assert.equal(await page.locator('#email').textContent(), email);
      assert.equal(await page.locator('#acr').textContent(), 'aal1');
      assert.equal(await page.locator('#amr').textContent(), 'pwd');
      // Signed in at Twofold too: the next app sign-in needs no form.
      await page.goto(`${rp.url}/start`);
      await page.getByRole('heading', { name: 'Signed in' }).waitFor();
    });

    it('asks for consent for a third-party application', async () => {
      const rp = await relyingParty(['--third-party']);
      const email = `consent-${Date.now()}@example.com`;
      await flows.createVerifiedAccount(server, email);
      const page = await newPage();
      await page.goto(`${rp.url}/start`);
      await page.waitForURL(/\/login$/);
      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByLabel('Password', { exact: true }).fill(flows.PASSWORD);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.getByRole('heading', { name: 'Allow Acme Shop to sign you in?' }).waitFor();
      await page.getByText(`your email address, ${email}`).waitFor();
      await page.getByRole('button', { name: 'Allow' }).click();
      await page.waitForURL(`${rp.url}/callback**`);
      assert.equal(await page.locator('#email').textContent(), email);
      // Asked once.
      await page.goto(`${rp.url}/start`);
      await page.getByRole('heading', { name: 'Signed in' }).waitFor();
    });

    it('steps up with a passkey when the application asks for phishing resistance', async () => {
      const rp = await relyingParty();
      const email = `phr-${Date.now()}@example.com`;
      await flows.createVerifiedAccount(server, email);
      const page = await newPage();
      await page.goto(`${server.baseUrl}/login`);
      await addVirtualAuthenticator(page);
      await flows.signIn(server, page, email);
      await page.waitForURL(/\/account$/);

      // The app wants phr: an account without a key is sent to add one.
      await page.goto(`${rp.url}/start?acr_values=phr`);
      await page.waitForURL(/\/account\/security$/);
      await page.getByRole('button', { name: /^Add a passkey/ }).click();
      await page.getByRole('heading', { name: 'Your backup codes' }).waitFor();

      // With a key: prove it (or it was just proven) and the app gets phr.
      await page.goto(`${rp.url}/start?acr_values=phr`);
      await page.waitForURL((u) => u.pathname === '/callback' || u.pathname === '/account/step-up');
      if (new URL(page.url()).pathname === '/account/step-up') {
        await page.getByRole('button', { name: 'Use your security key or passkey' }).click();
        await page.waitForURL(`${rp.url}/callback**`);
      }
      await page.getByRole('heading', { name: 'Signed in' }).waitFor();
      assert.equal(await page.locator('#acr').textContent(), 'phr');
      const amr = (await page.locator('#amr').textContent()).split(' ');
      assert.ok(amr.includes('user') && (amr.includes('hwk') || amr.includes('swk')), amr.join(' '));
    });
  });
}
