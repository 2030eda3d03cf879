'use strict';
// The operator console in Chromium, with operators held to passkeys: a customer has a passkey;
// the operator adds one at sign-in, opens the console from the account page, finds the
// customer, resets their two-step verification with a reason, and the customer's factors are
// gone (and they were told). The statistics page renders its charts; a customer gets 403.
const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, backends } = require('../lib/server');
const { launch, saveFailureArtifacts, addVirtualAuthenticator, checkLayout } = require('../lib/browser');
const flows = require('../lib/flows');

for (const backend of backends()) {
  describe(`operator console (${backend})`, () => {
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
      if (!t.passed) await saveFailureArtifacts(`console-${backend}`, t, pages, server?.log);
      for (const p of pages) await p.context().close().catch(() => {});
      pages = [];
    });

    const newPage = async () => {
      const page = await (await browser.newContext()).newPage();
      pages.push(page);
      return page;
    };

    it('lets an operator find an account and reset its two-step verification', async () => {
      const stamp = Date.now();
      const customerEmail = `customer-${stamp}@example.com`;
      const operatorEmail = `operator-${stamp}@example.com`;
      await flows.createVerifiedAccount(server, customerEmail);
      await flows.createVerifiedAccount(server, operatorEmail);
      server.cli(['user', 'promote', operatorEmail]);

      // The customer adds a passkey.
      const customer = await newPage();
      await customer.goto(`${server.baseUrl}/login`);
      await addVirtualAuthenticator(customer);
      await flows.signIn(server, customer, customerEmail);
      await customer.waitForURL(/\/account$/);
      await customer.goto(`${server.baseUrl}/account/security`);
      await customer.getByRole('button', { name: /^Add a passkey/ }).click();
      await customer.getByRole('heading', { name: 'Your backup codes' }).waitFor();
      assert.equal((await customer.request.get(`${server.baseUrl}/admin`)).status(), 403);

      // The operator signs in, adds the passkey the policy asks for, opens the console.
      const operator = await newPage();
      await operator.goto(`${server.baseUrl}/login`);
      await addVirtualAuthenticator(operator);
      await flows.signIn(server, operator, operatorEmail);
      await operator.waitForURL(/\/login\/set-up$/);
      await operator.getByRole('button', { name: /^Add a passkey/ }).click();
      await operator.getByRole('heading', { name: 'Your backup codes' }).waitFor();
      await operator.getByRole('link', { name: 'I have saved my codes' }).click();
      await operator.goto(`${server.baseUrl}/account`);
      await operator.getByRole('link', { name: 'Operator console' }).click();
      // Adding the key at sign-in was not a sign-in with it: the console asks for it, then
      // comes back.
      await operator.waitForURL(/\/account\/step-up/);
      await operator.getByRole('button', { name: 'Use your security key or passkey' }).click();
      await operator.waitForURL(/\/admin$/);

      await operator.getByLabel('Find an account by email').fill(`customer-${stamp}`);
      await operator.getByRole('button', { name: 'Search' }).click();
      await operator.getByRole('link', { name: customerEmail }).click();
      await operator.getByRole('heading', { name: customerEmail }).waitFor();
      assert.ok(await operator.getByRole('cell', { name: 'webauthn (passkey)' }).count() >= 1
        || (await operator.locator('text=webauthn').count()) >= 1, 'the passkey is listed');

      await operator.getByLabel('Action').selectOption('reset-2fa');
      await operator.getByLabel('Reason').fill(`lost phone, ticket ${stamp}`);
      await operator.getByRole('button', { name: 'Apply' }).click();
      await operator.getByText('Two-step verification was reset; the customer was told.').waitFor();
      const factors = operator.locator('h2:has-text("Second factors") + p');
      assert.equal(await factors.textContent(), 'None.');
      // The customer's notice (mail goes out in the background, after the passkey notice).
      for (let i = 0; i < 150 && !server.log.includes('An operator removed all second factors'); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(server.log.includes('An operator removed all second factors'), 'the customer is told');
      // The customer was signed out everywhere.
      assert.equal((await customer.request.get(`${server.baseUrl}/api/v1/account`)).status(), 401);

      // The audit log shows it with the reason; the statistics page draws its charts.
      await operator.goto(`${server.baseUrl}/admin/audit?event=two_factor_reset_by_operator`);
      await operator.getByText(`lost phone, ticket ${stamp}`).waitFor();
      await operator.goto(`${server.baseUrl}/admin/stats`);
      await operator.getByRole('heading', { name: 'Enrollment statistics' }).waitFor();
      assert.ok(await operator.locator('svg[role="img"]').count() >= 2, 'two charts');

      // API keys: create one (shown once), see it listed, revoke it with a reason.
      await operator.goto(`${server.baseUrl}/admin`);
      await operator.getByRole('link', { name: 'API keys' }).click();
      await operator.getByRole('heading', { name: 'API keys' }).waitFor();
      await operator.getByLabel('Tenant').fill('shop');
      await operator.getByLabel('Name').fill(`checkout ${stamp}`);
      await operator.getByRole('button', { name: 'Create key' }).click();
      const key = (await operator.locator('[role="status"] code').textContent()).trim();
      assert.match(key, /^tfk_[A-Za-z0-9_-]{43}$/);
      const verify = () => operator.request.get(`${server.baseUrl}/api/v1/subjects/u1/factors`, {
        headers: { authorization: `Bearer ${key}` },
      });
      assert.equal((await verify()).status(), 404, 'the key works (an unknown subject)');
      await checkLayout(operator, 'admin-api-keys-created');
      await operator.goto(`${server.baseUrl}/admin/api-keys`);
      assert.equal(await operator.locator(`code:text-is("${key}")`).count(), 0, 'shown only once');
      const revoke = operator.getByRole('form', { name: `Revoke checkout ${stamp}` });
      await revoke.getByLabel('Reason for revoking').fill('leaked in a screenshot');
      await revoke.getByRole('button', { name: 'Revoke' }).click();
      await operator.getByText('The key is revoked').waitFor();
      await operator.getByRole('listitem').filter({ hasText: 'leaked in a screenshot' }).waitFor();
      assert.equal((await verify()).status(), 401, 'the revoked key is refused');
      await checkLayout(operator, 'admin-api-keys-revoked');
    });
  });
}
