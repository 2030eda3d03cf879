'use strict';
const { chromium } = require('playwright-core');
const fs = require('node:fs');
const path = require('node:path');

async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Saves a screenshot of every open page when a test fails, for debugging. */
async function screenshotOnFailure(t, pages) {
  const dir = path.join(__dirname, '..', 'artifacts');
  fs.mkdirSync(dir, { recursive: true });
  let i = 0;
  for (const page of pages) {
    if (page.isClosed()) continue;
    const name = `${t.name}-${i++}`.replace(/[^a-z0-9-]+/gi, '_');
    await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true }).catch(() => {});
  }
}

module.exports = { launch, screenshotOnFailure };
