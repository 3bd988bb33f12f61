// Drive headless Chromium (Debian's, through playwright-core) against a server that `edgegnn
// demo` runs (tests/runtime/test_js_runtime.py starts it): the golden page, then the demo page
// clicked through a history, with a screenshot. Prints one JSON line; the Python test judges it.
//
//   node test/browser.mjs BASE_URL CLICKS_JSON SCREENSHOT.png
// CLICKS_JSON: a JSON list of item ids to click in the demo's catalog, in order.

import {chromium} from "playwright-core";

const [base, clicksJson, screenshot] = process.argv.slice(2);
const clicks = JSON.parse(clicksJson);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // no sandbox as root; no background networking: this machine's network is closed
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const errors = [];
try {
  const page = await browser.newPage({viewport: {width: 1200, height: 800}});
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(new URL("test/browser.html", base).href);
  await page.waitForFunction(() => window.goldenResult !== undefined, null, {timeout: 180_000});
  const golden = await page.evaluate(() => window.goldenResult);

  await page.goto(new URL("?k=10", base).href);
  await page.waitForSelector("#status[data-ready]", {timeout: 60_000});
  for (const [i, id] of clicks.entries()) {
    await page.fill("#search", id);
    await page.click(`#catalog button[data-item=${JSON.stringify(id)}]`);
    await page.waitForSelector(`body[data-answered="${i + 1}"]`);
  }
  await page.fill("#search", "");
  const shown = await page.$$eval("#recommendations li", (items) => items.map((li) => li.dataset.item));
  await page.screenshot({path: screenshot, fullPage: true});
  console.log(JSON.stringify({golden, demo: {history: clicks, shown}, errors}));
} finally {
  await browser.close();
}
