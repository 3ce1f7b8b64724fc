// Called by bench/dashboard.sh: node dashboard_paint.js CHROMIUM URL RUNS.
// Loads URL RUNS times, each in a fresh browser context, waits for the
// dashboard to show live data, and prints each first-contentful-paint, then
// the median (ms).
'use strict';
const { chromium } = require('playwright-core');

(async () => {
  const [exe, url, runsArg] = process.argv.slice(2);
  const runs = Number(runsArg);
  const browser = await chromium.launch({ executablePath: exe,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const paints = [];
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForSelector('#connection-state.state-live', { timeout: 15000 });
    const fcp = await page.evaluate(() => {
      const e = performance.getEntriesByName('first-contentful-paint')[0];
      return e ? e.startTime : null;
    });
    if (fcp === null) throw new Error('load ' + (i + 1) + ': no first-contentful-paint entry');
    paints.push(fcp);
    console.log('load ' + (i + 1) + ': first-contentful-paint ' + fcp.toFixed(1) + ' ms');
    await context.close();
  }
  await browser.close();
  const sorted = paints.slice().sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  console.log('dashboard first-contentful-paint median: ' + Math.round(median) + ' ms (' + runs + ' loads)');
})().catch((e) => {
  console.error('dashboard_paint.js: ' + (e && e.stack || e));
  process.exit(1);
});
