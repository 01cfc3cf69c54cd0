// The dashboard in a real headless browser (Debian's Chromium, driven by playwright-core)
// against the local runner that infra/browser-test.sh started with a poison marker:
// a posted message appears; a poison message reaches the dead-letter panel, is requeued once
// the fault is fixed and is stored, then deleted from the messages after a confirmation; a
// body with <script> shows as text; a raw body is a raw dead letter; purge asks for its
// confirmation. The screenshot in the
// README is taken here when SCREENSHOT names a file.
//
// With TARGET=stack it runs against the deployed stack (infra/browser-test.sh stack): the
// page and every call relative to the API's own base path, a posted message, and the raw
// dead letter the script sent (RAW_BODY), shown with its times and deleted from the panel.
//
//   PIPELINE_URL=... ADMIN_TOKEN=... WRITE_TOKEN=... SCREENSHOT=docs/dashboard.png node tests/browser/dashboard.mjs
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const url = process.env.PIPELINE_URL;
const admin = process.env.ADMIN_TOKEN;
const writer = process.env.WRITE_TOKEN;
const screenshot = process.env.SCREENSHOT;
const onStack = process.env.TARGET === "stack";
const rawBody = process.env.RAW_BODY;
assert.ok(url && admin && writer, "PIPELINE_URL, ADMIN_TOKEN and WRITE_TOKEN are required");
assert.ok(!onStack || rawBody, "TARGET=stack needs RAW_BODY, the raw dead letter it looks for");

const WAIT_MS = 60_000;

async function api(method, path, token, body, contentType = "application/json") {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": contentType },
    body,
  });
  const text = await response.text();
  return { status: response.status, text };
}

// A message posted through the API: its job id (one the API issued, so the routes that take
// an id accept it).
async function post(content) {
  const posted = await api("POST", "/messages", writer, JSON.stringify({ content }));
  assert.equal(posted.status, 202, posted.text);
  return JSON.parse(posted.text).job_id;
}

// A failure's or a message's time shows its time of day, whole: not cut by its column.
// `columns`: the 1-based columns of the row that hold times.
async function assertTimesShown(page, row, columns) {
  for (const column of columns) {
    const cell = page.locator(`${row} td:nth-child(${column})`);
    const text = await cell.textContent();
    assert.match(text, /\d{4}-\d{2}-\d{2}[T\s]\d{2}:\d{2}:\d{2}/, `a date and a time of day: ${text}`);
    assert.ok(await cell.evaluate((td) => td.scrollWidth <= td.clientWidth), `not cut: ${text}`);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // As root in a sandbox-less container, and without the background calls this machine's
  // closed network refuses.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const alerts = [];
  const confirmations = [];
  const requests = [];
  const refused = [];
  page.on("request", (request) => requests.push(request.url()));
  page.on("response", (response) => {
    if (response.status() >= 400) refused.push(`${response.status()} ${response.url()}`);
  });
  page.on("dialog", async (dialog) => {
    if (dialog.type() === "prompt") {
      await dialog.accept("purge");
    } else if (dialog.type() === "confirm") {
      confirmations.push(dialog.message());
      await dialog.accept();
    } else {
      alerts.push(dialog.message());
      await dialog.dismiss();
    }
  });

  const response = await page.goto(`${url}/dashboard`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()["content-security-policy"], /script-src 'self'/);
  await page.fill("#token", admin);
  await page.click("#token-form button");
  await page.waitForFunction(() => document.querySelector("#updated").textContent.startsWith("updated"));
  // Its style sheet applied (a page that fetched it from the host's root would be unstyled),
  // and the counts loaded.
  assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector("header")).display), "flex");
  assert.notEqual(await page.textContent("#count-stored"), "–");
  // The token is gone from the field once used, and never in the address.
  assert.equal(await page.inputValue("#token"), "");
  assert.ok(!page.url().includes(admin));

  // A posted message appears among the latest messages.
  const posted = await api("POST", "/messages", writer, JSON.stringify({
    content: "hello from the browser test",
    attributes: { tenant: "acme", note: "<b>bold?</b>" },
  }));
  assert.equal(posted.status, 202, posted.text);
  const job = JSON.parse(posted.text).job_id;
  await page.waitForSelector(`#messages tr[data-job-id="${job}"]`, { timeout: WAIT_MS });
  assert.equal(
    await page.textContent(`#messages tr[data-job-id="${job}"] td.content`),
    "hello from the browser test",
  );
  // Its attributes, markup shown as text.
  assert.equal(
    await page.textContent(`#messages tr[data-job-id="${job}"] td.attributes`),
    "note=<b>bold?</b>, tenant=acme",
  );
  assert.equal(await page.locator(`#messages tr[data-job-id="${job}"] b`).count(), 0);
  await assertTimesShown(page, `#messages tr[data-job-id="${job}"]`, [2]);
  // The last hour's charts are drawn (on the stack from CloudWatch: the emulator has no EMF,
  // so only their frames; below, on the runner, the run's own numbers).
  await page.waitForSelector("#chart-throughput line.axis", { state: "attached", timeout: WAIT_MS });
  await page.waitForSelector("#chart-latency line.axis", { state: "attached" });
  await page.waitForSelector("#chart-backlog line.axis", { state: "attached" });

  if (onStack) {
    // The raw dead letter the script sent to the stack's queue: listed, its times whole.
    const rawRow = '#dead-letters tr[data-kind="raw"]';
    const mine = page.locator(rawRow, { hasText: rawBody });
    await mine.waitFor({ timeout: WAIT_MS });
    await assertTimesShown(page, `#dead-letters tr[data-id="${await mine.getAttribute("data-id")}"]`, [3, 4]);
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    await mine.locator("button.delete").click();
    await mine.waitFor({ state: "detached", timeout: WAIT_MS });
  } else {
    // A poison message (the runner's store refuses it for good): dead-lettered at its first
    // failure (no retry can store it), with why, its <script> shown as text.
    const content = "POISON <script>alert('xss')</script><img src=x onerror=alert(1)>";
    const poison = await post(content);
    const row = `#dead-letters tr[data-id="${poison}"]`;
    await page.waitForSelector(row, { timeout: WAIT_MS });
    assert.equal(await page.textContent(`${row} td.content`), content);
    assert.match(await page.textContent(row), /poison/);
    assert.equal(await page.locator("#dead-letters script, #dead-letters img").count(), 0);
    await assertTimesShown(page, row, [3, 4]);
    await page.waitForFunction(() => document.querySelector("#count-dead").textContent === "1");

    // The charts draw this run's numbers: the posted message enqueued and stored with its
    // latency, the poison one enqueued and dead-lettered, the backlog sampled. Clicking the
    // section redraws it at once (it refreshes every 30 s by itself).
    const chart = async () => page.evaluate(() => {
      const sum = (selector) => [...document.querySelectorAll(selector)]
        .reduce((total, bar) => total + Number(bar.dataset.count), 0);
      const values = (series) => (document.querySelector(`polyline[data-series="${series}"]`)?.dataset.values || "")
        .split(",").filter(Boolean).map(Number);
      return {
        stored: sum('#chart-throughput rect[data-outcome="stored"]'),
        dead: sum('#chart-throughput rect[data-outcome="dead"]'),
        enqueued: values("enqueued").reduce((total, n) => total + n, 0),
        latencies: values("p50").length,
        backlogs: values("backlog").length,
      };
    });
    const drawn = (c) => c.stored >= 1 && c.dead >= 1 && c.enqueued >= 2 && c.latencies >= 1 && c.backlogs >= 1;
    let charted = await chart();
    for (const deadline = Date.now() + WAIT_MS; !drawn(charted) && Date.now() < deadline;) {
      await page.click("#flow h2");
      await page.waitForTimeout(500);
      charted = await chart();
    }
    assert.ok(drawn(charted), `the charts show the run: ${JSON.stringify(charted)}`);

    // The job search box finds it.
    await page.fill("#job-id", poison);
    await page.click("#job-form button");
    await page.waitForFunction(() => document.querySelector("#job-result").textContent.includes("dead_lettered"));
    // With its failed delivery, class and error, and not its content.
    const found = JSON.parse(await page.textContent("#job-result"));
    assert.equal(found.attempts.length, 1, JSON.stringify(found));
    assert.equal(found.attempts[0].class, "permanent");

    // A second poison job, deleted from the panel after a confirmation.
    const doomed = await post("POISON, to be deleted");
    const doomedRow = `#dead-letters tr[data-id="${doomed}"]`;
    await page.waitForSelector(doomedRow, { timeout: WAIT_MS });

    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });

    await page.click(`${doomedRow} button.delete`);
    await page.waitForSelector(doomedRow, { state: "detached" });
    assert.deepEqual(confirmations, [`Delete job ${doomed} for good?`]);
    await page.waitForFunction(() => document.querySelector("#count-dead").textContent === "1");

    // The bug is fixed; requeue it from the panel: it is stored under its own job id.
    assert.equal((await api("DELETE", "/_local/faults", admin)).status, 200);
    await page.click(`${row} button.requeue`);
    await page.waitForSelector(`#messages tr[data-job-id="${poison}"]`, { timeout: WAIT_MS });
    assert.equal(await page.textContent(`#messages tr[data-job-id="${poison}"] td.content`), content);
    await page.waitForSelector(row, { state: "detached" });
    assert.equal(await page.locator("#messages script, #messages img").count(), 0);

    // Erased from the messages after a confirmation: gone from the page, and its job says so.
    const storedRow = `#messages tr[data-job-id="${poison}"]`;
    await page.click(`${storedRow} button.delete-message`);
    await page.waitForSelector(storedRow, { state: "detached", timeout: WAIT_MS });
    assert.equal(confirmations.at(-1), `Delete the message of job ${poison} for good? It cannot be read again.`);
    await page.fill("#job-id", poison);
    await page.click("#job-form button");
    await page.waitForFunction(() => document.querySelector("#job-result").textContent.includes('"deleted"'));
    assert.equal((await api("GET", `/messages/${poison}`, admin)).status, 404);

    // A body that is not an envelope at all is listed as a raw dead letter, beside a count
    // that agrees, with no requeue button (it would only fail again).
    const garbage = await api("POST", "/_local/queue", admin, "not an envelope", "text/plain");
    assert.equal(garbage.status, 202, garbage.text);
    const rawRow = '#dead-letters tr[data-kind="raw"]';
    await page.waitForSelector(rawRow, { timeout: WAIT_MS });
    assert.equal(await page.textContent(`${rawRow} td.content`), "not an envelope");
    assert.equal(await page.locator(`${rawRow} button.requeue`).count(), 0);
    await page.waitForFunction(() => document.querySelector("#count-dead").textContent === "1", null, { timeout: WAIT_MS });
    assert.equal(await page.locator("#dead-letters tr").count(), 1);

    // Purge asks first (the prompt is answered "purge"), then empties the queue.
    await page.click("#purge");
    await page.waitForFunction(() => document.querySelector("#count-dead").textContent === "0", null, { timeout: WAIT_MS });

  }

  // Pause stops the refresh.
  await page.click("#pause");
  assert.equal(await page.textContent("#pause"), "Resume");

  assert.deepEqual(alerts, [], "no script from a message ran");
  assert.deepEqual(refused, [], "every file and call of the page answered");
  const foreign = requests.filter((address) => !address.startsWith(url));
  assert.deepEqual(foreign, [], "the page loaded nothing from elsewhere");
  console.log(`browser test: ok (${requests.length} requests, all to ${url})`);
} catch (error) {
  failed = true;
  console.error(error);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
