'use strict';
// Steps shared by the browser suites. Each takes the running server from lib/server.js.
const assert = require('node:assert/strict');

const PASSWORD = 'correct horse battery staple 42';
const VERIFY_LINK = /http:\/\/(?:127\.0\.0\.1|localhost):\d+\/verify-email\?token=[A-Za-z0-9_-]+/;

/** Creates a verified account through the JSON API (the browser sign-up has its own test). */
async function createVerifiedAccount(server, email, password = PASSWORD) {
  const post = (path, body) => fetch(`${server.baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const signup = await post('/api/v1/signup', { email, password });
  assert.equal(signup.status, 202, `POST /api/v1/signup: ${await signup.text()}`);
  const link = await server.waitForMail(email, VERIFY_LINK);
  const token = new URL(link).searchParams.get('token');
  const verified = await post('/api/v1/email-verification', { token });
  assert.equal(verified.status, 200, `POST /api/v1/email-verification: ${await verified.text()}`);
}

/** Fills and submits the sign-in form. */
async function signIn(server, page, email, password = PASSWORD) {
  await page.goto(`${server.baseUrl}/login`);
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

module.exports = { PASSWORD, VERIFY_LINK, createVerifiedAccount, signIn };
