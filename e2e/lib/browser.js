'use strict';
// Debian's Chromium driven by playwright-core (no downloaded browser), and failure artifacts.
const { chromium } = require('playwright-core');
const fs = require('node:fs');
const path = require('node:path');

const ARTIFACTS = path.join(__dirname, '..', 'artifacts');

async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

const safe = (s) => s.replace(/[^a-z0-9-]+/gi, '_').slice(0, 120);

/**
 * Saves a full-page screenshot of every open page, and the server log so far, into
 * e2e/artifacts/ when a test fails. `prefix` is e.g. the backend name.
 */
async function saveFailureArtifacts(prefix, t, pages, serverLog) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const base = safe(`${prefix}-${t.name}`);
  let i = 0;
  for (const page of pages) {
    if (page.isClosed()) continue;
    const file = path.join(ARTIFACTS, `${base}-${i++}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
  }
  if (serverLog !== undefined) fs.writeFileSync(path.join(ARTIFACTS, `${base}-server.log`), serverLog);
  console.error(`# failure artifacts: ${path.join(ARTIFACTS, base)}-*`);
}

/**
 * Gives `page`'s browser context a virtual authenticator through the DevTools protocol
 * (resident keys, user verification on; `transport` 'internal' is a platform authenticator,
 * 'usb' a security key). Returns its id and the CDP session.
 */
async function addVirtualAuthenticator(page, transport = 'internal') {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport,
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

/**
 * Checks the page at a phone width (390 px) and a desktop width (1280 px): nothing may scroll
 * sideways. With TWOFOLD_SCREENSHOTS=DIR set, saves a full-page screenshot at each width, to
 * look at. Restores the page's viewport afterwards.
 */
async function checkLayout(page, name) {
  const before = page.viewportSize();
  for (const width of [390, 1280]) {
    await page.setViewportSize({ width, height: 844 });
    const { scroll, client } = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      client: document.documentElement.clientWidth,
    }));
    const dir = process.env.TWOFOLD_SCREENSHOTS;
    if (dir) {
      fs.mkdirSync(dir, { recursive: true });
      await page.screenshot({ path: path.join(dir, `${name}-${width}.png`), fullPage: true });
    }
    if (scroll > client) {
      throw new Error(`${name} scrolls sideways at ${width} px: ${scroll} > ${client}`);
    }
  }
  if (before) await page.setViewportSize(before);
}

module.exports = { launch, saveFailureArtifacts, addVirtualAuthenticator, checkLayout, ARTIFACTS };
