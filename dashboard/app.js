// The operations page. Everything it shows comes from the API with the token the user gives;
// the token lives in this script's memory only (not in storage, not in the URL), so it is gone
// when the tab closes. Every text from the API goes in through textContent, never as markup.
"use strict";

const REFRESH_MS = 3000;
// The history is a minute a row; on AWS each read is a CloudWatch GetMetricData call (paid
// per metric asked): twice a minute is enough.
const HISTORY_MS = 30000;
let token = "";
let paused = false;
let timer = null;
let historyTimer = null;

// Every call is relative to the page: behind API Gateway the API is not at the host's root
// (a stage, a custom domain's base path, the emulator's /_aws/execute-api/<id>/), and the
// page at <api>/dashboard puts it at ".".
const API = new URL(".", window.location.href);

const $ = (id) => document.getElementById(id);

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

async function call(method, path) {
  const response = await fetch(new URL(path, API), {
    method,
    headers: { Authorization: `Bearer ${token}` },
    cache: "no-store",
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const reason = body.error || body.message || response.statusText;
    throw new Error(`${method} ${path}: ${response.status} ${reason}`);
  }
  return body;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  td.title = td.textContent;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

// An RFC 3339 time from the API as its date and its time of day on two lines, so that a
// narrow column never cuts the time; the cell's title keeps the exact value.
function when(row, time) {
  const td = cell(row, time, "time");
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})/.exec(time || "");
  if (match) td.textContent = `${match[1]}\n${match[2]}`;
  return td;
}

function setCount(id, count) {
  $(id).textContent = count == null ? "–" : String(count);
}

async function loadStats() {
  const stats = await call("GET", "stats");
  setCount("count-visible", stats.queue.visible);
  setCount("count-in-flight", stats.queue.in_flight);
  setCount("count-delayed", stats.queue.delayed);
  setCount("count-oldest", stats.queue.oldest_age_seconds);
  setCount("count-dead", stats.dead_letter_queue.count);
  setCount("count-stored", stats.stored.count);
}

// Charts: SVG drawn here (no library, nothing from elsewhere, no inline style: the page's
// CSP), each series named where it is drawn, and each bar and line carrying its numbers
// (data-*) so that what is drawn can be checked.
const SVG_NS = "http://www.w3.org/2000/svg";
const PLOT = { left: 34, right: 340, top: 12, bottom: 170 };

function svg(tag, attributes, text) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text != null) element.textContent = String(text);
  return element;
}

// The smallest of 1, 2, 5 times a power of ten at or above `max`: the y axis's top.
function niceTop(max) {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * power).find((top) => top >= max);
}

// Clears `chart` and draws its axes: 0 and `top` on y, the first and last minute on x.
function frame(chart, minutes, top) {
  chart.replaceChildren();
  const { left, right, top: up, bottom } = PLOT;
  chart.append(svg("line", { class: "axis", x1: left, y1: bottom, x2: right, y2: bottom }));
  chart.append(svg("line", { class: "axis", x1: left, y1: up, x2: right, y2: up }));
  chart.append(svg("text", { x: left - 4, y: up + 4, "text-anchor": "end" }, top));
  chart.append(svg("text", { x: left - 4, y: bottom, "text-anchor": "end" }, 0));
  const time = (minute) => minute.start.slice(11, 16);
  chart.append(svg("text", { x: left, y: 190 }, time(minutes[0])));
  chart.append(svg("text", { x: right, y: 190, "text-anchor": "end" }, time(minutes[minutes.length - 1])));
  const step = (right - left) / minutes.length;
  return {
    step,
    x: (i) => left + i * step,
    y: (value) => bottom - (value / top) * (bottom - up),
  };
}

// A series as a line through the middle of each minute that has a value, named at its end
// with its last value.
function line(chart, minutes, scale, value, name, unit = "") {
  const points = minutes
    .map((minute, i) => [scale.x(i) + scale.step / 2, value(minute)])
    .filter(([, v]) => v != null);
  if (points.length === 0) return;
  const path = points.map(([x, v]) => `${x.toFixed(1)},${scale.y(v).toFixed(1)}`).join(" ");
  chart.append(svg("polyline", {
    class: `line ${name}`,
    points: path,
    "data-series": name,
    "data-values": points.map(([, v]) => v).join(","),
  }));
  // The last point marked (a minute alone is a point, not a line), and named beside it,
  // below any name already there.
  const [x, v] = points[points.length - 1];
  chart.append(svg("circle", { class: `dot ${name}`, cx: x, cy: scale.y(v), r: 2.5 }));
  let y = scale.y(v) + 4;
  const taken = [...chart.querySelectorAll("text.end-label")].map((label) => Number(label.getAttribute("y")));
  while (taken.some((other) => Math.abs(other - y) < 13)) y += 13;
  chart.append(svg("text", { class: `end-label label-${name}`, x: x + 6, y }, `${name} ${v}${unit}`));
}

function drawThroughput(minutes) {
  const chart = $("chart-throughput");
  const outcomes = (m) => [
    ["stored", m.stored],
    ["retried", m.failed.transient + m.failed.deployment],
    ["dead", m.dead_lettered],
  ];
  const most = Math.max(...minutes.map((m) => Math.max(m.enqueued, ...[outcomes(m).reduce((sum, [, n]) => sum + n, 0)])));
  const scale = frame(chart, minutes, niceTop(most));
  minutes.forEach((minute, i) => {
    let below = 0;
    for (const [outcome, count] of outcomes(minute)) {
      if (!count) continue;
      const bar = svg("rect", {
        class: outcome,
        x: scale.x(i) + 0.5,
        width: Math.max(scale.step - 1, 1),
        y: scale.y(below + count),
        height: scale.y(below) - scale.y(below + count),
        "data-minute": minute.start,
        "data-outcome": outcome,
        "data-count": count,
      });
      bar.append(svg("title", {}, `${minute.start.slice(11, 16)} UTC: ${count} ${outcome}`));
      chart.append(bar);
      below += count;
    }
  });
  line(chart, minutes, scale, (m) => m.enqueued, "enqueued");
}

function drawLatency(minutes) {
  const chart = $("chart-latency");
  const most = Math.max(0, ...minutes.map((m) => m.latency_ms.p99 ?? 0));
  const scale = frame(chart, minutes, niceTop(most));
  line(chart, minutes, scale, (m) => m.latency_ms.p99, "p99", " ms");
  line(chart, minutes, scale, (m) => m.latency_ms.p50, "p50", " ms");
}

function drawBacklog(minutes) {
  const chart = $("chart-backlog");
  const most = Math.max(0, ...minutes.map((m) => m.backlog ?? 0));
  const scale = frame(chart, minutes, niceTop(most));
  line(chart, minutes, scale, (m) => m.backlog, "backlog");
}

async function loadHistory() {
  const history = await call("GET", "stats/history?minutes=60");
  drawThroughput(history.minutes);
  drawLatency(history.minutes);
  drawBacklog(history.minutes);
}

async function refreshHistory() {
  if (!token) return;
  try {
    await loadHistory();
  } catch (error) {
    showError(error.message);
  }
}

async function loadMessages() {
  const page = await call("GET", "messages?limit=20");
  const body = $("messages");
  body.replaceChildren();
  for (const message of page.messages) {
    const row = document.createElement("tr");
    row.dataset.jobId = message.id;
    cell(row, message.id);
    when(row, message.timestamp);
    cell(row, message.content, "wrap content");
    // Attributes are client data too: text, like the content.
    const attributes = Object.entries(message.attributes || {}).map(([k, v]) => `${k}=${v}`);
    cell(row, attributes.join(", "), "wrap attributes");
    // Erasure (messages/admin): gone from every read, and a later delivery is not stored.
    const action = document.createElement("td");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Delete";
    remove.className = "delete-message danger";
    remove.addEventListener("click", () => {
      if (!window.confirm(`Delete the message of job ${message.id} for good? It cannot be read again.`)) return;
      act(() => call("DELETE", `messages/${encodeURIComponent(message.id)}`));
    });
    action.appendChild(remove);
    row.appendChild(action);
    body.appendChild(row);
  }
}

async function loadDeadLetters() {
  let page;
  try {
    page = await call("GET", "dead-letters?limit=50");
  } catch (error) {
    // A token without messages/admin still sees the counts and the messages.
    if (String(error.message).includes(" 403 ")) {
      $("dead-letters").replaceChildren();
      $("dead-empty").hidden = false;
      $("dead-empty").textContent = "This token has no messages/admin scope: dead letters are hidden.";
      return;
    }
    throw error;
  }
  const body = $("dead-letters");
  body.replaceChildren();
  for (const letter of page.dead_letters) {
    const row = document.createElement("tr");
    // A job is named by its job id; a raw dead letter (a body that is not an envelope of this
    // pipeline) by its message id, and it cannot be requeued: it would only fail again.
    const raw = letter.kind === "raw";
    row.dataset.id = letter.id;
    row.dataset.kind = letter.kind;
    cell(row, raw ? `${letter.id} (raw message)` : letter.id);
    cell(row, letter.receive_count);
    when(row, letter.first_failure_at);
    when(row, letter.last_failure_at);
    cell(row, letter.last_error, "wrap");
    cell(row, letter.preview, "wrap content");
    const action = document.createElement("td");
    if (!raw) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Requeue";
      button.className = "requeue";
      button.addEventListener("click", () => act(() => call("POST", `dead-letters/${encodeURIComponent(letter.id)}/requeue`)));
      action.appendChild(button);
    }
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Delete";
    remove.className = "delete danger";
    remove.addEventListener("click", () => {
      const what = raw ? `raw message ${letter.id}` : `job ${letter.id}`;
      if (!window.confirm(`Delete ${what} for good?`)) return;
      act(() => call("DELETE", `dead-letters/${encodeURIComponent(letter.id)}`));
    });
    action.appendChild(remove);
    row.appendChild(action);
    body.appendChild(row);
  }
  $("dead-empty").textContent = "The dead-letter queue is empty.";
  $("dead-empty").hidden = page.dead_letters.length > 0;
}

async function refresh() {
  if (!token) return;
  try {
    await Promise.all([loadStats(), loadMessages(), loadDeadLetters()]);
    showError("");
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    showError(error.message);
  }
}

async function act(action) {
  try {
    await action();
    showError("");
  } catch (error) {
    showError(error.message);
  }
  await refresh();
}

function schedule() {
  clearInterval(timer);
  clearInterval(historyTimer);
  timer = paused ? null : setInterval(refresh, REFRESH_MS);
  historyTimer = paused ? null : setInterval(refreshHistory, HISTORY_MS);
}

async function requeueAll() {
  // Without a move task the API moves what fits in one call: call again until done.
  for (;;) {
    const outcome = await call("POST", "dead-letters/requeue-all");
    if (outcome.done) return;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    $("token").placeholder = token ? "token set (kept in this tab only)" : "bearer token";
    refresh();
    refreshHistory();
    schedule();
  });
  $("pause").addEventListener("click", () => {
    paused = !paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    schedule();
  });
  // Drawn now, for whoever wants to see the last hour at once.
  $("flow").addEventListener("click", refreshHistory);
  $("job-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = $("job-id").value.trim();
    if (!id) return;
    try {
      const job = await call("GET", `jobs/${encodeURIComponent(id)}`);
      $("job-result").textContent = JSON.stringify(job, null, 2);
    } catch (error) {
      $("job-result").textContent = error.message;
    }
  });
  $("requeue-all").addEventListener("click", () => act(requeueAll));
  $("purge").addEventListener("click", () => {
    const typed = window.prompt("This deletes every dead letter for good. Type purge to confirm.");
    if (typed !== "purge") return;
    act(() => call("DELETE", "dead-letters?confirm=purge"));
  });
});
