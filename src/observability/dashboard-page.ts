/**
 * The dashboard: one self-contained page (no build step, no dependency) that polls /api/stats
 * every second, draws message rates and p95 latency per queue (the last minutes from the server's
 * /api/history, so the charts are full on load), lists recent failures, and
 * browses and replays dead letters (all, or one shown whole), and pauses and resumes a queue. When the worker has a token, the page asks for it once.
 */
export const DASHBOARD_HTML = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>WQueue worker</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px system-ui, sans-serif; margin: 0; color: #1d2433; background: #f5f6f8; }
  header { background: #1d2433; color: #fff; padding: 12px 20px; display: flex; gap: 24px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  main { padding: 16px 20px; display: grid; gap: 16px; }
  section { background: #fff; border-radius: 6px; padding: 12px 16px; box-shadow: 0 1px 2px #0002; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: right; padding: 4px 8px; border-bottom: 1px solid #e4e6eb; white-space: nowrap; }
  th:first-child, td:first-child, td.text { text-align: left; }
  td.text { white-space: normal; max-width: 520px; overflow-wrap: anywhere; }
  #failures th, #failures td, #dead th, #dead td { text-align: left; }
  .charts { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
  canvas { width: 100%; height: 180px; }
  .legend span { margin-right: 12px; }
  button { font: inherit; padding: 3px 10px; cursor: pointer; }
  .muted { color: #6b7280; }
  .bad { color: #b42318; }
  pre { background: #f5f6f8; padding: 8px; margin: 4px 0 8px; white-space: pre-wrap; overflow-wrap: anywhere; max-height: 240px; overflow: auto; }
  #letter dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0 0 8px; }
  #letter dt { color: #6b7280; }
</style>
</head>
<body>
<header><h1>WQueue worker</h1><span id="worker" class="muted">connecting…</span></header>
<main>
  <section><h2>Queues</h2>
    <table id="queues"><thead><tr><th>queue</th><th>broker</th><th>msg/s</th><th>received</th><th>succeeded</th>
      <th>failed</th><th>retried</th><th>dead</th><th>in flight</th><th>backlog</th><th>p50 ms</th><th>p95 ms</th><th>fetching</th></tr></thead>
      <tbody></tbody></table>
  </section>
  <div class="charts">
    <section><h2>Messages handled per second</h2><canvas id="rate" width="600" height="180"></canvas><div id="rate-legend" class="legend"></div></section>
    <section><h2>Handler latency p95 (ms)</h2><canvas id="latency" width="600" height="180"></canvas></section>
  </div>
  <section id="processes-section" hidden><h2>Worker processes</h2>
    <table id="processes"><thead><tr><th>child</th><th>pid</th><th>up s</th><th>ready</th><th>received</th><th>in flight</th><th>paused</th><th>problems</th></tr></thead><tbody></tbody></table>
  </section>
  <section><h2>Recent failures</h2>
    <table id="failures"><thead><tr><th>time</th><th>queue</th><th>message</th><th>attempt</th><th>outcome</th><th>error</th></tr></thead><tbody></tbody></table>
  </section>
  <section><h2>Dead letters</h2>
    <label>queue <select id="dl-queue"></select></label> <button id="dl-refresh">Show</button> <button id="dl-replay">Replay all…</button>
    <span id="dl-status" class="muted"></span>
    <table id="dead"><thead><tr><th>id</th><th>died</th><th>reason</th><th>attempts</th><th>error</th><th>payload</th><th></th></tr></thead><tbody></tbody></table>
    <div id="letter" hidden>
      <h2>Dead letter <span id="letter-id"></span></h2>
      <dl id="letter-fields"></dl>
      <div>stack</div><pre id="letter-stack"></pre>
      <div>headers</div><pre id="letter-headers"></pre>
      <div>payload</div><pre id="letter-body"></pre>
      <button id="letter-replay">Replay this one</button> <button id="letter-delete">Delete this one</button>
      <span id="letter-status" class="muted"></span>
    </div>
  </section>
</main>
<script>
"use strict";
var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
var WINDOW_MS = 10 * 60 * 1000;
var series = {}; // "queue @ broker" -> [{ time, rate, p95 }] within the last WINDOW_MS
var previous = null;
var token = sessionStorage.getItem("wqueue-token") || "";

function api(path, init) {
  init = init || {};
  // The server refuses a state change without this header: another site cannot send it.
  init.headers = { "x-wqueue-request": "1" };
  if (token) init.headers.authorization = "Bearer " + token;
  return fetch(path, init).then(function (response) {
    if (response.status === 401) {
      token = prompt("This worker needs its access token") || "";
      sessionStorage.setItem("wqueue-token", token);
      throw new Error("unauthorized");
    }
    return response.json();
  });
}
function cell(row, text, cls) { var td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; }
function fmt(n) { return n === null || n === undefined ? "–" : (Math.round(n * 10) / 10).toLocaleString("en"); }

function render(stats) {
  document.getElementById("worker").textContent = "model " + stats.model + " · concurrency " + stats.concurrency +
    " · " + stats.processes + " process(es) · pid " + stats.pid + " · up " + stats.uptimeSeconds + " s";
  var body = document.querySelector("#queues tbody");
  body.innerHTML = "";
  var select = document.getElementById("dl-queue");
  stats.queues.forEach(function (q, i) {
    var done = q.succeeded + q.failed;
    var before = previous && previous.queues.find(function (p) { return p.queue === q.queue && p.broker === q.broker; });
    var seconds = previous ? (stats.time - previous.time) / 1000 : 0;
    var rate = before && seconds > 0 ? (done - before.succeeded - before.failed) / seconds : 0;
    var key = q.queue + " @ " + q.broker;
    if (previous) addPoint(key, stats.time, rate, q.p95Ms);
    var row = body.insertRow();
    row.dataset.queue = q.queue;
    cell(row, q.paused ? q.queue + " (paused)" : q.queue); cell(row, q.broker, "text"); cell(row, fmt(rate)); cell(row, fmt(q.received)); cell(row, fmt(q.succeeded));
    cell(row, fmt(q.failed), q.failed ? "bad" : ""); cell(row, fmt(q.retried)); cell(row, fmt(q.deadLettered), q.deadLettered ? "bad" : "");
    cell(row, fmt(q.inFlight)); cell(row, fmt(q.backlog)); cell(row, fmt(q.p50Ms)); cell(row, fmt(q.p95Ms));
    var toggle = document.createElement("button");
    toggle.textContent = q.paused ? "Resume" : "Pause";
    toggle.className = "pause";
    toggle.onclick = function () { setPaused(q.queue, !q.paused); };
    cell(row, "").appendChild(toggle);
    if (!Array.prototype.some.call(select.options, function (o) { return o.value === q.queue; })) select.add(new Option(q.queue, q.queue));
  });
  draw("rate", "rate");
  draw("latency", "p95");
  var legend = document.getElementById("rate-legend");
  legend.innerHTML = "";
  Object.keys(series).forEach(function (key, i) {
    var span = document.createElement("span"); span.style.color = COLORS[i % COLORS.length]; span.textContent = "■ " + key; legend.appendChild(span);
  });
  renderChildren(stats.children);
  var failures = document.querySelector("#failures tbody");
  failures.innerHTML = "";
  stats.recentFailures.slice(0, 20).forEach(function (f) {
    var row = failures.insertRow();
    cell(row, f.at.slice(11, 19)); cell(row, f.queue); cell(row, f.messageId); cell(row, f.attempt); cell(row, f.outcome, "text"); cell(row, f.error, "text bad");
  });
  previous = stats;
}

// Under --processes: one row per child, also one that did not answer.
function renderChildren(children) {
  document.getElementById("processes-section").hidden = !children;
  var body = document.querySelector("#processes tbody");
  body.innerHTML = "";
  (children || []).forEach(function (c) {
    var row = body.insertRow();
    cell(row, c.index); cell(row, c.pid === undefined ? "–" : c.pid); cell(row, fmt(c.uptimeSeconds));
    cell(row, c.ready ? "yes" : "no", c.ready ? "" : "bad"); cell(row, fmt(c.received)); cell(row, fmt(c.inFlight));
    cell(row, c.paused.join(", ") || "–"); cell(row, c.problems.join("; ") || "–", "text");
  });
}

function addPoint(key, time, rate, p95) {
  var points = (series[key] = series[key] || []);
  points.push({ time: time, rate: rate, p95: p95 || 0 });
  while (points.length && points[0].time < time - WINDOW_MS) points.shift();
}

// The server's samples (every few seconds) before this page opened: rates between consecutive ones.
function loadHistory(history) {
  for (var i = 1; i < history.samples.length; i++) {
    var before = history.samples[i - 1], now = history.samples[i], seconds = (now.time - before.time) / 1000;
    now.queues.forEach(function (q) {
      var b = before.queues.find(function (p) { return p.queue === q.queue && p.broker === q.broker; });
      if (b && seconds > 0) addPoint(q.queue + " @ " + q.broker, now.time, (q.done - b.done) / seconds, q.p95Ms);
    });
  }
}

function draw(id, field) {
  var canvas = document.getElementById(id), ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  var keys = Object.keys(series), max = 1, end = 0; // end: the newest sample, on the server's clock
  keys.forEach(function (k) { series[k].forEach(function (p) { max = Math.max(max, p[field]); end = Math.max(end, p.time); }); });
  var start = end; keys.forEach(function (k) { if (series[k].length) start = Math.min(start, series[k][0].time); });
  canvas.dataset.since = String(start); // the oldest point shown (tests check the history was loaded)
  var span = Math.max(end - start, 60 * 1000); // the time shown: what there is, at least a minute
  ctx.fillStyle = "#6b7280"; ctx.font = "11px system-ui"; ctx.fillText(fmt(max), 4, 12);
  keys.forEach(function (k, i) {
    ctx.strokeStyle = COLORS[i % COLORS.length]; ctx.lineWidth = 2; ctx.beginPath();
    series[k].forEach(function (p, x) {
      var px = (1 - (end - p.time) / span) * canvas.width, py = canvas.height - 4 - (p[field] / max) * (canvas.height - 20);
      if (x === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
  });
}

function showDeadLetters(note) {
  var queue = document.getElementById("dl-queue").value;
  if (!queue) return;
  api("/api/dead-letters?queue=" + encodeURIComponent(queue)).then(function (letters) {
    var body = document.querySelector("#dead tbody");
    body.innerHTML = "";
    (letters.error ? [] : letters).forEach(function (d) {
      var row = body.insertRow();
      cell(row, d.id); cell(row, d.at || "–"); cell(row, d.reason || "–"); cell(row, d.attempts === undefined ? "–" : d.attempts);
      cell(row, d.error || "–", "text bad"); cell(row, d.body, "text");
      var showButton = document.createElement("button");
      showButton.textContent = "Show"; showButton.className = "show-letter";
      showButton.onclick = function () { showLetter(queue, d.id); };
      cell(row, "").appendChild(showButton);
    });
    document.getElementById("dl-status").textContent = (typeof note === "string" ? note + "; " : "") +
      (letters.error ? letters.error : letters.length + " dead letter(s) in " + queue);
  }).catch(function () {});
}
document.getElementById("dl-refresh").onclick = showDeadLetters;

// One dead letter whole; replay or delete it alone where the broker can address one message.
var shown = null;
function showLetter(queue, id) {
  api("/api/dead-letters/one?queue=" + encodeURIComponent(queue) + "&id=" + encodeURIComponent(id)).then(function (result) {
    var panel = document.getElementById("letter");
    if (result.error) { document.getElementById("dl-status").textContent = result.error; panel.hidden = true; return; }
    var d = result.letter;
    shown = { queue: queue, id: d.id };
    panel.hidden = false;
    document.getElementById("letter-id").textContent = d.id;
    var fields = document.getElementById("letter-fields");
    fields.innerHTML = "";
    [["queue", d.queue], ["died", d.at], ["reason", d.reason], ["attempts", d.attempts], ["key", d.key], ["error", d.error]].forEach(function (f) {
      var dt = document.createElement("dt"); dt.textContent = f[0]; fields.appendChild(dt);
      var dd = document.createElement("dd"); dd.textContent = f[1] === undefined || f[1] === null ? "–" : f[1]; dd.style.margin = "0"; fields.appendChild(dd);
    });
    document.getElementById("letter-stack").textContent = d.headers["x-wqueue-dead-error-stack"] || "–";
    document.getElementById("letter-headers").textContent = JSON.stringify(d.headers, null, 2);
    document.getElementById("letter-body").textContent = d.body;
    ["letter-replay", "letter-delete"].forEach(function (b) { document.getElementById(b).disabled = !result.canReplayOrDeleteOne; });
    document.getElementById("letter-status").textContent = result.canReplayOrDeleteOne ? "" :
      "this broker cannot address one message: replay or purge the whole queue";
  }).catch(function () {});
}
function actOnLetter(action) {
  if (!shown || !confirm((action === "replay" ? "Replay" : "Delete") + " dead letter " + shown.id + " of " + shown.queue + "?")) return;
  var target = shown;
  api("/api/dead-letters/one/" + action + "?queue=" + encodeURIComponent(target.queue) + "&id=" + encodeURIComponent(target.id), { method: "POST" })
    .then(function (result) {
      document.getElementById("letter").hidden = !result.error;
      document.getElementById("letter-status").textContent = result.error || "";
      showDeadLetters(result.error ? result.error : (action === "replay" ? "replayed " : "deleted ") + target.id);
    }).catch(function () {});
}
document.getElementById("letter-replay").onclick = function () { actOnLetter("replay"); };
document.getElementById("letter-delete").onclick = function () { actOnLetter("delete"); };
document.getElementById("dl-replay").onclick = function () {
  var queue = document.getElementById("dl-queue").value;
  if (!queue || !confirm("Replay every dead letter of " + queue + " back to " + queue + "?")) return;
  api("/api/dead-letters/replay?queue=" + encodeURIComponent(queue), { method: "POST" }).then(function (result) {
    showDeadLetters("replayed " + result.replayed + " dead letter(s)");
  }).catch(function () {});
};

// Pause: every worker process of this endpoint stops fetching the queue; what it holds stays leased.
function setPaused(queue, paused) {
  api("/api/queues/" + (paused ? "pause" : "resume") + "?queue=" + encodeURIComponent(queue), { method: "POST" })
    .then(function (result) { if (result.error || (result.problems && result.problems.length)) alert(result.error || result.problems.join("; ")); })
    .catch(function () {});
}

function poll() {
  api("/api/stats").then(render).catch(function () {}).finally(function () { setTimeout(poll, 1000); });
}
api("/api/history").then(loadHistory).catch(function () {}).finally(poll);
</script>
</body>
</html>
`;
