// The dashboard's page: it trades the one-time code in its URL for a
// session kept in this tab (sessionStorage: this origin only, never a
// cookie), then polls /api/state. Everything it shows is set as text,
// never as HTML: peers choose their own agent strings.
"use strict";

const CHARTS = [
  ["peers", "connected peers", v => v.toFixed(0)],
  ["routing_table", "DHT routing table", v => v.toFixed(0)],
  ["served_kib_per_s", "served, KiB/s", v => v.toFixed(1)],
  ["resolves_per_s", "resolves/s", v => v.toFixed(2)],
  ["heap_mib", "heap, MiB", v => v.toFixed(1)],
  ["goroutines", "goroutines", v => v.toFixed(0)],
];

const $ = id => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function setStatus(text, error) {
  const s = $("status");
  s.textContent = text;
  s.className = error ? "status error" : "status";
}

function short(id) { return id && id.length > 16 ? id.slice(0, 8) + "…" + id.slice(-6) : (id || ""); }

function ago(iso) {
  if (!iso) return "";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function fill(tbodyID, rows, cells, emptyText) {
  const body = $(tbodyID);
  body.replaceChildren();
  if (!rows || rows.length === 0) {
    const tr = el("tr");
    const td = el("td", emptyText, "empty");
    td.colSpan = 8;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const row of rows) {
    const tr = el("tr");
    for (const [text, cls, title] of cells(row)) {
      const td = el("td", text, cls);
      if (title) td.title = title;
      tr.append(td);
    }
    body.append(tr);
  }
}

function facts(dlID, pairs) {
  const dl = $(dlID);
  dl.replaceChildren();
  for (const [k, v, cls] of pairs) {
    if (v === undefined || v === null || v === "") continue;
    dl.append(el("dt", k), el("dd", v, cls));
  }
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function render(answer) {
  const st = answer.state;
  const n = st.node;
  $("version").textContent = st.version;
  facts("node-facts", [
    ["peer ID", n.peer_id, "mono"],
    ["reachability", n.reachability, n.reachability],
    ["DHT mode", n.dht_mode],
    ["uptime", n.uptime],
    ["listening on", (n.addrs || []).join("\n"), "mono"],
    ["relay addresses", (n.relay_addrs || []).join("\n"), "mono"],
    ["gateway", n.gateway, "mono"],
    ["metrics", n.metrics, "mono"],
  ]);
  const peers = st.peers || [];
  $("peer-count").textContent = peers.length;
  fill("peer-rows", peers, p => [
    [short(p.peer_id), "mono", p.peer_id],
    [p.relayed ? "relayed" : "direct", p.relayed ? "relayed" : "direct"],
    [p.direction],
    [p.latency || ""],
    [p.agent || ""],
  ], "no peers connected");
  const owned = st.names || [];
  $("name-count").textContent = owned.length;
  fill("name-rows", owned, o => [
    [o.name],
    [o.key, "mono"],
    [o.health, o.health, o.error],
    [ago(o.published) || "not since start", "", o.expires ? "zone expires " + o.expires : ""],
    [(o.copies || []).length ? (o.copies || []).map(short).join(", ") : "none known", "mono"],
  ], "this node owns no names");
  fill("role-rows", st.roles, r => [
    [r.name], [r.state, r.state.split(" ")[0]], [r.restarts], [r.pid || ""], [r.version || ""], [r.last_error || ""],
  ], "no roles enabled");
  $("mirror-status").textContent = st.mirror ? JSON.stringify(st.mirror, null, 2) : "the mirror role is not running";
  const c = st.content;
  facts("content-facts", [
    ["blocks stored", String(c.blocks)],
    ["bytes stored", bytes(c.bytes)],
    ["pins", String(c.pin_count)],
  ]);
  fill("pin-rows", c.pins, p => [[p.cid, "mono"], [p.reason]], "nothing pinned");
  const refusals = st.refusals || [];
  $("refusal-count").textContent = refusals.length;
  fill("refusal-rows", refusals, r => [
    [ago(r.at), "", r.at], [r.hook], [short(r.peer), "mono", r.peer], [(r.script || "").split("/").pop(), "", r.script], [r.reason],
  ], "no refusals");
  drawCharts(answer);
}

function drawCharts(answer) {
  const grid = $("chart-grid");
  for (const [key, label, format] of CHARTS) {
    let box = document.getElementById("chart-" + key);
    if (!box) {
      box = el("div", null, "chart");
      box.id = "chart-" + key;
      const head = el("div", null, "label");
      head.append(el("span", label), el("span", "", "value"));
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("viewBox", "0 0 100 40");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.append(document.createElementNS("http://www.w3.org/2000/svg", "polyline"));
      box.append(head, svg);
      grid.append(box);
    }
    const values = (answer.series || {})[key] || [];
    box.dataset.points = values.length;
    box.querySelector(".value").textContent = values.length ? format(values[values.length - 1]) : "–";
    const max = Math.max(1e-9, ...values), min = Math.min(0, ...values);
    const step = values.length > 1 ? 100 / (values.length - 1) : 0;
    const pts = values.map((v, i) => (i * step).toFixed(2) + "," + (38 - 36 * (v - min) / (max - min)).toFixed(2));
    box.querySelector("polyline").setAttribute("points", pts.join(" "));
  }
}

async function login() {
  const m = location.hash.match(/code=([0-9a-f]+)/);
  if (!m) return;
  history.replaceState(null, "", location.pathname);
  const r = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ code: m[1] }) });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || "login failed: " + r.status);
  sessionStorage.setItem("avnode-session", body.session);
}

let timer = null, polling = false;

// poll asks for the state once, then schedules the next ask; one loop only.
async function poll() {
  if (polling) return;
  clearTimeout(timer);
  polling = true;
  try {
    await pollOnce();
  } finally {
    polling = false;
  }
}

async function pollOnce() {
  const session = sessionStorage.getItem("avnode-session");
  if (!session) {
    setStatus("Run `avnode dashboard` and open the address it prints: this page needs its one-time code.", true);
    return;
  }
  let wait = 2000;
  try {
    const r = await fetch("/api/state", { headers: { Authorization: "Bearer " + session } });
    const body = await r.json();
    if (r.status === 401) {
      sessionStorage.removeItem("avnode-session");
      setStatus(body.error, true);
      return;
    }
    if (!r.ok) throw new Error(body.error || String(r.status));
    render(body);
    $("main").hidden = false;
    setStatus("updated " + new Date().toLocaleTimeString());
    wait = Math.max(1000, (body.interval_seconds || 2) * 1000);
    if (document.hidden) wait = Math.max(wait, 30000); // a tab nobody looks at asks less
  } catch (e) {
    setStatus("the node does not answer: " + e.message + " (is it running?)", true);
  }
  timer = setTimeout(poll, wait);
}

login().then(poll, e => setStatus(e.message, true));
// Back in sight: fresh numbers at once, not at the end of a hidden tab's wait.
document.addEventListener("visibilitychange", () => { if (!document.hidden && sessionStorage.getItem("avnode-session")) poll(); });
