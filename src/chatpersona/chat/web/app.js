// chatpersona web UI: the chat widget (pre / during / post chat) and the dashboard.
// Plain JS, no dependencies, no network beyond this API. Bot replies arrive as HTML whose
// variables the server escaped (Jinja2 autoescape); everything else is set as text.
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = ["#2f6fde", "#e8833a", "#2aa876", "#c2417b", "#8a63d2", "#c9a227", "#3aa6b9", "#7a7f87"];
const state = { key: "", userId: "", chatId: "", csat: 0, nps: null, feedAfter: 0, segColor: {} };

function setStatus(text) { $("status").textContent = text || ""; }

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (state.key) headers["Authorization"] = "Bearer " + state.key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const msg = (data && data.message) || res.statusText;
    throw new Error(res.status + " " + msg);
  }
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "style") node.setAttribute("style", v);
    else if (k.startsWith("data-") || k.startsWith("aria-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function colorOf(segment) {
  if (!(segment in state.segColor)) {
    state.segColor[segment] = COLORS[Object.keys(state.segColor).length % COLORS.length];
  }
  return state.segColor[segment];
}

// ---------------------------------------------------------------- chat widget
function addMessage(who, turnOrText) {
  const chat = $("chat");
  let node;
  if (who === "bot") {
    const turn = turnOrText;
    node = el("div", { class: "msg bot" + (turn.kind === "escalate" ? " escalate" : ""), "data-testid": "bot-message", "data-kind": turn.kind });
    const body = el("span", { class: "body" });
    body.innerHTML = turn.html; // escaped by the server's templates
    node.append(body);
    const bits = [turn.kind, turn.tone, turn.lang];
    if (turn.prediction) bits.push(turn.prediction.intent + " " + Math.round(turn.prediction.confidence * 100) + "%");
    node.append(el("span", { class: "meta" }, bits.join(" · ")));
  } else {
    node = el("div", { class: "msg me", "data-testid": "user-message" }, turnOrText);
  }
  chat.append(node);
  chat.scrollTop = chat.scrollHeight;
}

function setQuickReplies(list) {
  const box = $("quick");
  box.replaceChildren();
  for (const label of list || []) {
    box.append(el("button", { type: "button", onclick: () => send(label) }, label));
  }
}

function setChatting(on) {
  $("message").disabled = !on;
  $("send").disabled = !on;
  $("end").disabled = !on;
  if (on) $("message").focus();
}

async function startChat() {
  const userId = ($("user-id").value || $("demo-user").value || "").trim();
  if (!userId) { setStatus("Pick a demo user or enter an id."); return; }
  state.userId = userId;
  $("chat").replaceChildren();
  $("rating").hidden = true;
  $("changes").replaceChildren(el("li", { class: "muted" }, "Nothing yet."));
  try {
    const turn = await api("POST", `/api/chat/${encodeURIComponent(userId)}/start`, { channel: "web", device: "desktop" });
    state.chatId = turn.chat_id;
    addMessage("bot", turn);
    setQuickReplies(turn.quick_replies);
    state.before = turn.profile;
    renderProfile(turn.profile);
    setChatting(true);
    setStatus("");
  } catch (err) { setStatus(err.message); }
}

async function send(text) {
  text = (text || "").trim();
  if (!text || !state.chatId) return;
  addMessage("me", text);
  $("message").value = "";
  setQuickReplies([]);
  try {
    const turn = await api("POST", `/api/chat/${encodeURIComponent(state.userId)}/message`, { chat_id: state.chatId, text });
    addMessage("bot", turn);
    setQuickReplies(turn.quick_replies);
  } catch (err) { setStatus(err.message); }
}

function scaleButtons(boxId, from, to, onPick) {
  const box = $(boxId);
  box.replaceChildren();
  for (let i = from; i <= to; i++) {
    const b = el("button", { type: "button", "aria-pressed": "false", "data-value": String(i) }, String(i));
    b.onclick = () => {
      for (const other of box.children) other.setAttribute("aria-pressed", "false");
      b.setAttribute("aria-pressed", "true");
      onPick(i);
    };
    box.append(b);
  }
}

async function endChat() {
  if (!state.chatId) return;
  try {
    const turn = await api("POST", `/api/chat/${encodeURIComponent(state.userId)}/end`, { chat_id: state.chatId });
    addMessage("bot", turn);
    setQuickReplies([]);
    setChatting(false);
    state.csat = 0; state.nps = null;
    $("csat-prompt").textContent = turn.prompts.csat || turn.text;
    $("nps-prompt").textContent = (turn.prompts.nps || "") + " (optional)";
    scaleButtons("csat-buttons", 1, 5, (v) => { state.csat = v; $("submit-rating").disabled = false; });
    scaleButtons("nps-buttons", 0, 10, (v) => { state.nps = v; });
    $("submit-rating").disabled = true;
    $("rating").hidden = false;
  } catch (err) { setStatus(err.message); }
}

async function submitRating() {
  if (!state.csat) return;
  const body = { chat_id: state.chatId, csat: state.csat };
  if (state.nps !== null) body.nps = state.nps;
  try {
    const turn = await api("POST", `/api/chat/${encodeURIComponent(state.userId)}/feedback`, body);
    addMessage("bot", turn);
    $("rating").hidden = true;
    state.chatId = "";
    renderProfile(turn.profile);
    renderChanges(turn.changes);
    refreshDashboard();
    followProfile(state.userId, turn.profile ? turn.profile.version : -1);
  } catch (err) { setStatus(err.message); }
}

// When events go through the stream worker, the profile changes a moment after the
// rating: poll it for a few seconds and show the whole difference to the pre-chat profile.
async function followProfile(userId, seenVersion) {
  for (let i = 0; i < 8; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    if (userId !== state.userId) return;
    let p;
    try { p = await api("GET", `/api/user/${encodeURIComponent(userId)}/profile`); } catch (err) { return; }
    if (p.version !== seenVersion) {
      seenVersion = p.version;
      renderProfile(p);
      if (state.before) {
        const changes = diffProfiles(state.before, p);
        renderChanges(changes);
        const seg = changes.find((c) => c.field === "segment");
        if (seg && seg.after !== state.lastSegmentShown) {
          state.lastSegmentShown = seg.after;
          $("feed").prepend(el("li", { class: "segment_changed", "data-kind": "segment_changed" },
            el("span", { class: "k" }, "segment_changed"), ` ${userId} segment ${seg.before || "—"} → ${seg.after || "—"}`));
        }
      }
      renderSegments();
    }
  }
}

function diffProfiles(a, b) {
  const out = [];
  for (const part of ["preferences", "attributes", "feedback"]) {
    const x = a[part] || {}, y = b[part] || {};
    for (const k of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort()) {
      if (JSON.stringify(x[k]) !== JSON.stringify(y[k])) out.push({ field: `${part}.${k}`, before: x[k], after: y[k] });
    }
  }
  if (a.interaction_count !== b.interaction_count) out.push({ field: "interaction_count", before: a.interaction_count, after: b.interaction_count });
  const sa = a.segment ? a.segment.name : null, sb = b.segment ? b.segment.name : null;
  if (sa !== sb) out.push({ field: "segment", before: sa, after: sb });
  return out;
}

// ---------------------------------------------------------------- profile viewer
function fmt(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(2);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function renderProfile(p) {
  const box = $("profile");
  box.replaceChildren();
  if (!p) { box.append(el("p", { class: "muted" }, "No profile.")); return; }
  const prefs = p.preferences || {};
  const rows = [
    ["user", p.user_id],
    ["name", prefs.name || (p.attributes || {}).name],
    ["language", prefs.language || (p.attributes || {}).language],
    ["segment", p.segment ? p.segment.name : null],
    ["chats", p.interaction_count],
    ["CSAT mean", p.feedback ? p.feedback.csat_mean : null],
    ["last CSAT", p.feedback ? p.feedback.csat_last : null],
    ["last NPS", p.feedback ? p.feedback.nps_last : null],
    ["open issue", prefs.open_issue_category ? `${prefs.open_issue_category} (${(prefs.open_issue_at || "").slice(0, 10)})` : null],
    ["version", p.version],
  ];
  const dl = el("dl");
  for (const [k, v] of rows) dl.append(el("dt", {}, k), el("dd", { "data-field": k }, fmt(v)));
  box.append(dl);
}

function renderChanges(changes) {
  const list = $("changes");
  list.replaceChildren();
  if (!changes || !changes.length) { list.append(el("li", { class: "muted" }, "No change.")); return; }
  for (const c of changes) {
    list.append(el("li", { "data-field": c.field }, c.field + ": ",
      el("span", { class: "before" }, fmt(c.before)), " → ", el("span", { class: "after" }, fmt(c.after))));
  }
}

// ---------------------------------------------------------------- dashboard
async function loadDemoUsers() {
  try {
    const data = await api("GET", "/api/chat/demo-users?n=8");
    const sel = $("demo-user");
    sel.replaceChildren(el("option", { value: "" }, "— pick one —"));
    for (const u of data.users) {
      const bits = [u.user_id];
      if (u.name) bits.push(u.name);
      if (u.segment) bits.push(u.segment);
      if (u.open_issue) bits.push("open " + u.open_issue.toLowerCase());
      sel.append(el("option", { value: u.user_id }, bits.join(" · ")));
    }
  } catch (err) { setStatus(err.message); }
}

async function renderSegments() {
  let segs = { segments: [], model_version: null };
  let map = { points: [], segments: [] };
  try { segs = await api("GET", "/api/segments"); } catch (err) { setStatus(err.message); }
  try { map = await api("GET", "/api/chat/map"); } catch (err) { setStatus(err.message); }
  $("model-version").textContent = segs.model_version ? "model " + segs.model_version : "";
  const csat = {};
  const count = {};
  for (const s of map.segments) { csat[s.id] = s.csat_mean; count[s.id] = s.count; }
  const cards = $("segment-cards");
  cards.replaceChildren();
  const list = segs.segments.length ? segs.segments : map.segments;
  for (const s of list) {
    const card = el("div", { class: "seg", style: `--c:${colorOf(s.id)}`, "data-segment": s.id },
      el("h4", {}, s.name || s.id),
      el("div", {}, el("span", { class: "num" }, fmt(s.size ?? count[s.id])), " users",
        s.share != null ? ` · ${(s.share * 100).toFixed(1)}%` : ""),
      el("div", {}, "CSAT " + fmt(csat[s.id] ?? s.csat_mean)));
    if (s.description) card.append(el("div", { class: "muted" }, s.description));
    const feats = (s.top_features || []).slice(0, 3);
    if (feats.length) {
      const ul = el("ul");
      for (const f of feats) ul.append(el("li", {}, typeof f === "object" ? (f.feature || f.name || JSON.stringify(f)) : f));
      card.append(ul);
    }
    cards.append(card);
  }
  if (!list.length) cards.append(el("p", { class: "muted" }, "No segment model is active yet."));
  drawMap(map);
}

function drawMap(map) {
  const box = $("map");
  box.replaceChildren();
  const pts = map.points || [];
  if (!pts.length) {
    const t = svg("text", { x: 200, y: 150, "text-anchor": "middle", fill: "#6b7280", "font-size": 13 });
    t.textContent = "No user features yet.";
    box.append(t);
    return;
  }
  const xs = pts.map((p) => p.x), ys = pts.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => 12 + ((x - x0) / ((x1 - x0) || 1)) * 376;
  const sy = (y) => 288 - ((y - y0) / ((y1 - y0) || 1)) * 276;
  for (const p of pts) {
    const c = svg("circle", { cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: 2.6, fill: colorOf(p.segment), "fill-opacity": 0.7 });
    const title = svg("title", {});
    title.textContent = p.user_id;
    c.append(title);
    box.append(c);
  }
  const legend = $("legend");
  legend.replaceChildren();
  for (const s of map.segments) legend.append(el("span", { style: `--c:${colorOf(s.id)}` }, `${s.name} (${s.count})`));
}

async function renderPerformance() {
  let data = { series: {} };
  try { data = await api("GET", "/api/chat/performance"); } catch (err) { return; }
  const box = $("perf");
  box.replaceChildren();
  const names = Object.keys(data.series);
  const legend = $("perf-legend");
  legend.replaceChildren();
  for (const y of [0, 0.5, 1]) {
    const line = svg("line", { x1: 30, x2: 390, y1: 280 - y * 260, y2: 280 - y * 260, stroke: "#e3e6eb" });
    const label = svg("text", { x: 4, y: 284 - y * 260, "font-size": 10, fill: "#6b7280" });
    label.textContent = y.toFixed(1);
    box.append(line, label);
  }
  if (!names.length) {
    const t = svg("text", { x: 210, y: 150, "text-anchor": "middle", fill: "#6b7280", "font-size": 13 });
    t.textContent = "Rate a chat to see rewards.";
    box.append(t);
    return;
  }
  names.forEach((name, i) => {
    const pts = data.series[name];
    const color = COLORS[i % COLORS.length];
    const step = 360 / Math.max(1, pts.length - 1);
    const coords = pts.map((p, j) => `${(30 + j * step).toFixed(1)},${(280 - p.mean * 260).toFixed(1)}`);
    if (pts.length === 1) coords.push(`390,${(280 - pts[0].mean * 260).toFixed(1)}`);
    box.append(svg("polyline", { points: coords.join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
    const last = pts[pts.length - 1];
    legend.append(el("span", { style: `--c:${color}` }, `${name}: ${last.mean.toFixed(2)} (n=${pts.length})`));
  });
}

async function pollFeed() {
  if (!state.key) return;
  try {
    const data = await api("GET", `/api/chat/feed?after=${state.feedAfter}`);
    const feed = $("feed");
    for (const item of data.items) {
      state.feedAfter = Math.max(state.feedAfter, item.seq);
      let text;
      if (item.kind === "event") {
        const e = item.event, p = e.payload || {};
        const extra = p.intent ? ` ${p.intent}` : p.csat ? ` csat=${p.csat}` + (p.nps != null ? ` nps=${p.nps}` : "") : p.resolved !== undefined ? ` resolved=${p.resolved}` : "";
        text = `${e.ts.slice(11, 19)} ${e.user_id} ${e.type}${extra}`;
      } else if (item.kind === "segment_changed") {
        text = `${item.user_id} segment ${item.before || "—"} → ${item.after || "—"}`;
      } else {
        text = `${item.user_id} profile: ${(item.changes || []).map((c) => c.field).join(", ") || "no change"}`;
      }
      feed.prepend(el("li", { class: item.kind, "data-kind": item.kind }, el("span", { class: "k" }, item.kind), " ", text));
    }
    while (feed.children.length > 200) feed.lastChild.remove();
  } catch (err) { setStatus(err.message); }
}

function refreshDashboard() {
  renderSegments();
  renderPerformance();
  pollFeed();
}

// ---------------------------------------------------------------- wiring
function init() {
  const params = new URLSearchParams(location.search);
  state.key = params.get("key") || localStorage.getItem("chatpersona.key") || "";
  $("api-key").value = state.key;
  if (params.get("key")) localStorage.setItem("chatpersona.key", state.key);
  $("api-key").addEventListener("change", () => {
    state.key = $("api-key").value.trim();
    localStorage.setItem("chatpersona.key", state.key);
    loadDemoUsers();
    refreshDashboard();
  });
  $("demo-user").addEventListener("change", () => { $("user-id").value = ""; });
  $("start").addEventListener("click", startChat);
  $("composer").addEventListener("submit", (ev) => { ev.preventDefault(); send($("message").value); });
  $("end").addEventListener("click", endChat);
  $("submit-rating").addEventListener("click", submitRating);
  if (!state.key) setStatus("Enter the API key printed by `chatpersona demo`.");
  loadDemoUsers();
  refreshDashboard();
  setInterval(pollFeed, 2000);
  setInterval(() => { renderPerformance(); }, 10000);
}

document.addEventListener("DOMContentLoaded", init);
