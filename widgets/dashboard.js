// minigun_nb live dashboard: the front end of minigun_nb.display.widget (an anywidget).
//
// Hand-written ES module, no bundler and no run-time dependency. The trait contract (graph,
// stats, run, errors) is docs/displays.md and SPEC section 13.
//
// Safety: every piece of text that comes from the kernel (stage names, labels, item reprs,
// messages, tracebacks, hint, peek, notice) reaches the page through textContent or
// setAttribute only. Nothing in this file parses a string as markup (a unit test greps the
// source for the HTML-parsing DOM properties and methods).
//
// Updates: the DOM is built once per graph; stats, run and errors changes update texts,
// classes and attributes in place, so expanded error rows and scroll positions survive the
// refreshes (up to 10 a second).
//
// Stable DOM hooks (used by widgets/test/ and the browser test; keep them):
//   .mg-dash                 the root element (data-status = run status)
//   .mg-notice               run.notice (hidden when null) or the local "press Interrupt" note
//   .mg-runline              the run line, holding:
//     .mg-pipeline .mg-status .mg-elapsed .mg-totals .mg-left   (pipeline name, status, mm:ss,
//                            "N done · N failed · N items/s", "N left" while stopping)
//     .mg-stop               the Stop button (becomes "Cancel" while stopping)
//   .mg-hint                 run.hint
//   .mg-dag > svg            the DAG; one g.mg-node[data-stage=<path>] per stage, holding
//     .mg-name .mg-backend .mg-done .mg-failed .mg-rate .mg-lat .mg-qfill .mg-badge
//                            (.mg-done: items done; for a producer, items emitted)
//                            (.mg-done / .mg-failed carry data-value = the exact count)
//                            node classes: mg-st-<status>, mg-bottleneck, mg-stalled, mg-active
//     path.mg-edge[data-source][data-target] (+ mg-active when its source emitted lately)
//   .mg-stage-table          tr[data-stage] per stage
//   .mg-error-table          tr.mg-error-row[data-id] per error row; when expanded, the next
//                            row holds pre.mg-traceback; .mg-more says how many are not shown
//
// Exports: default {render} (anywidget), Dashboard, renderDashboard, pipelineCounts, and the
// formatters formatCount, formatRate, formatMs, formatDuration, formatElapsed, truncate.

const SVG_NS = "http://www.w3.org/2000/svg";
const TRAITS = ["graph", "stats", "run", "errors"];
const ENDED = new Set(["done", "failed", "stopped", "cancelled"]);
const OPERATORS = new Set(["batch", "debatch", "rebatch"]);
const STATUSES = ["pending", "running", "stopping", "done", "failed", "stopped", "cancelled"];
// How long a Stop click may go unanswered before the page says to press Interrupt (SPEC 13).
const STOP_ANSWER_MS = 2000;
const PEEK_CHARS = 200;
const INTERRUPT_NOTE =
  "Stop has not reached the kernel: it is busy running this cell. Press the kernel's " +
  "Interrupt button (\u25a0) to stop the run; it finishes what is queued.";

// ---- formatting (the same rules as minigun_nb.observe.summary) ------------------------

// Number.toFixed breaks an exact tie upwards, Python's format to the even digit; the exact
// decimal expansion (toFixed(100) is exact for the magnitudes shown here) tells a tie apart.
function fixed(v, digits) {
  const out = v.toFixed(digits);
  const exact = Math.abs(v).toFixed(100);
  const rest = exact.slice(exact.indexOf(".") + 1 + digits);
  if (!/^50*$/.test(rest)) return out;
  const down = (Math.sign(v) * Number(exact.slice(0, exact.length - rest.length))).toFixed(digits);
  const last = down.replace(/\D/g, "").slice(-1);
  return Number(last) % 2 === 0 ? down : out;
}

function threeDigits(v) {
  const m = Math.abs(v);
  return m >= 100 ? fixed(v, 0) : m >= 10 ? fixed(v, 1) : fixed(v, 2);
}

/** A count: exact below 10,000, then three significant digits with k/M/G/T. */
export function formatCount(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return "-";
  if (Math.abs(n) < 10000) return fixed(n, 0);
  const scales = [[1e3, "k"], [1e6, "M"], [1e9, "G"], [1e12, "T"]];
  for (const [scale, suffix] of scales) {
    const text = threeDigits(n / scale);
    // 999,999 would read "1000k": move on to the next unit instead.
    if (Math.abs(Number(text)) < 1000 || suffix === "T") return text + suffix;
  }
  return String(n);
}

/** Items per second: two decimals below 10, then fewer, compact from 10,000. */
export function formatRate(r) {
  if (r === null || r === undefined || !Number.isFinite(r)) return "-";
  if (r === 0) return "0";
  if (r < 10) return fixed(r, 2);
  if (r < 100) return fixed(r, 1);
  if (r < 10000) return fixed(r, 0);
  return formatCount(r);
}

/** Milliseconds with about three significant digits; "-" when missing. */
export function formatMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "-";
  if (ms < 1) return fixed(ms, 3);
  if (ms < 10) return fixed(ms, 2);
  if (ms < 100) return fixed(ms, 1);
  if (ms < 10000) return fixed(ms, 0);
  return formatCount(ms);
}

/** A duration: 4.20s, 42.0s, 2m05s, 1h02m03s. */
export function formatDuration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "-";
  if (s < 10) return `${fixed(s, 2)}s`;
  if (s < 60) return `${fixed(s, 1)}s`;
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, "0");
  return h ? `${h}h${String(m).padStart(2, "0")}m${sec}s` : `${m}m${sec}s`;
}

/** Elapsed time of the run line: mm:ss, h:mm:ss from an hour on. */
export function formatElapsed(s) {
  const total = Number.isFinite(s) && s > 0 ? Math.floor(s) : 0;
  const h = Math.floor(total / 3600);
  const mm = String(Math.floor((total % 3600) / 60)).padStart(2, "0");
  const ss = String(total % 60).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** `text` cut to `n` characters, the last one an ellipsis when cut. */
export function truncate(text, n) {
  const s = text === null || text === undefined ? "" : String(text);
  return s.length > n ? s.slice(0, Math.max(0, n - 1)) + "\u2026" : s;
}

// ---- small DOM helpers ----------------------------------------------------------------

function h(doc, tag, cls, text) {
  const e = doc.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function s(doc, tag, attrs, cls) {
  const e = doc.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (cls) e.setAttribute("class", cls);
  return e;
}

// Writes only when the value changed: at 10 Hz most texts stay the same.
function setText(e, text) {
  const t = String(text);
  if (e.textContent !== t) e.textContent = t;
}

function setAttr(e, name, value) {
  const v = String(value);
  if (e.getAttribute(name) !== v) e.setAttribute(name, v);
}

function setFlag(e, name, on) {
  if (e[name] !== on) e[name] = on;
}

// Touches the class attribute only when it changes (a refresh usually changes nothing).
function toggleClass(e, cls, on) {
  if (e.classList.contains(cls) !== on) e.classList.toggle(cls, on);
}

function setStatusClass(e, status) {
  for (const st of STATUSES) toggleClass(e, `mg-st-${st}`, st === status);
}

// SVG text neither wraps nor clips, and measuring it would force a layout at every refresh:
// widths are estimated from the character count (px per character at the CSS font size), and
// a text estimated too wide for its room is condensed to fit with textLength.
const NAME_CHAR_PX = 7.4;
const BACKEND_CHAR_PX = 6.5;
const RATE_CHAR_PX = 6.4;
const LAT_CHAR_PX = 5.6;

function fitWidth(e, text, room, perChar) {
  if (text.length * perChar > room && room > 0) {
    setAttr(e, "textLength", room.toFixed(0));
    setAttr(e, "lengthAdjust", "spacingAndGlyphs");
  } else if (e.hasAttribute("textLength")) {
    e.removeAttribute("textLength");
    e.removeAttribute("lengthAdjust");
  }
}

function num(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

/**
 * (done, failed, items/s) of the run as a whole, as minigun_nb.display.text counts them:
 * done and items/s of its terminal stages (no out-edge; producers aside), failed over all.
 */
export function pipelineCounts(graph, stats) {
  const rows = Object.entries(stats || {});
  const sources = new Set(((graph && graph.edges) || []).map((e) => e.source));
  const producer = ([, st]) => st.kind === "producer";
  let terminal = rows.filter((r) => !sources.has(r[0]) && !producer(r));
  if (!terminal.length) terminal = rows.filter((r) => !producer(r));
  if (!terminal.length) terminal = rows;
  const done = terminal.reduce((n, r) => n + num(producer(r) ? r[1].items_out : r[1].done), 0);
  const failed = rows.reduce((n, [, st]) => n + num(st.failed), 0);
  const rate = terminal.reduce((n, [, st]) => n + num(st.throughput), 0);
  return { done, failed, rate };
}

const STAGE_COLUMNS = [
  ["stage", (p) => p, false],
  ["status", (p, st) => st.status ?? "-", false],
  ["in", (p, st) => formatCount(st.items_in), true],
  ["out", (p, st) => formatCount(st.items_out), true],
  ["done", (p, st) => formatCount(st.done), true],
  ["failed", (p, st) => formatCount(st.failed), true],
  ["items/s", (p, st) => formatRate(st.throughput), true],
  ["busy %", (p, st) => (Number.isFinite(st.busy) ? String(Math.round(st.busy * 100)) : "-"), true],
  ["queue", (p, st) => (st.queue_size ? `${formatCount(st.queue_depth)}/${formatCount(st.queue_size)}` : "-"), true],
  ["p50 ms", (p, st) => formatMs(st.p50_ms), true],
  ["p99 ms", (p, st) => formatMs(st.p99_ms), true],
  ["oldest", (p, st) => (st.oldest_s === null || st.oldest_s === undefined ? "-" : formatDuration(st.oldest_s)), true],
  ["last output", (p, st) => truncate(st.peek ?? "", PEEK_CHARS), false],
];
const ERROR_COLUMNS = [
  ["stage", (r) => r.stage ?? ""],
  ["exception", (r) => r.exc_type ?? ""],
  ["message", (r) => r.message ?? ""],
  ["item", (r) => r.item_repr ?? ""],
  ["attempts", (r) => (r.attempts === null || r.attempts === undefined ? "" : String(r.attempts))],
];

// ---- the dashboard --------------------------------------------------------------------

/**
 * The live dashboard inside `root`.
 *
 * Parameters
 * ----------
 * root : Element
 *     The element to draw into (gets the class `mg-dash`).
 * options.send : function(msg)
 *     Sends a message to the kernel (the widget's `model.send`).
 * options.setTimeout / options.clearTimeout
 *     The timer used for the "press Interrupt" note (injectable for tests).
 */
export class Dashboard {
  constructor(root, options = {}) {
    this.root = root;
    this.doc = root.ownerDocument;
    this.send = options.send || (() => {});
    this.setTimeout = options.setTimeout || globalThis.setTimeout.bind(globalThis);
    this.clearTimeout = options.clearTimeout || globalThis.clearTimeout.bind(globalThis);
    this.state = { graph: null, stats: {}, run: {}, errors: [] };
    this.graphKey = null;
    this.nodes = new Map(); // path -> {g, parts}
    this.edges = [];
    this.stageRows = new Map(); // path -> {tr, cells}
    this.errorRows = new Map(); // id -> {tr, cells, detail}
    this.expanded = new Set(); // error row ids whose traceback is open
    this.stopSent = null; // null | "drain" | "cancel"
    this.stopTimer = null;
    this.localNotice = null;
    this.build();
  }

  build() {
    const d = this.doc;
    this.root.classList.add("mg-dash");
    this.root.replaceChildren();
    this.notice = h(d, "div", "mg-notice");
    this.notice.setAttribute("role", "status");
    this.notice.hidden = true;

    this.runline = h(d, "div", "mg-runline");
    this.pipeline = h(d, "span", "mg-pipeline");
    this.status = h(d, "span", "mg-status", "pending");
    this.elapsed = h(d, "span", "mg-elapsed", "00:00");
    this.totals = h(d, "span", "mg-totals");
    this.left = h(d, "span", "mg-left");
    this.left.hidden = true;
    this.stop = h(d, "button", "mg-stop", "Stop");
    this.stop.type = "button";
    this.stop.title = "Stop the run: finish what is queued, take no new items";
    this.onStop = () => this.clickStop();
    this.stop.addEventListener("click", this.onStop);
    this.runline.append(this.pipeline, this.status, this.elapsed, this.totals, this.left, this.stop);
    this.hint = h(d, "div", "mg-hint");
    this.hint.hidden = true;

    this.dag = h(d, "div", "mg-dag");
    this.svg = s(d, "svg", { role: "img", "aria-label": "pipeline graph" });
    this.dag.append(this.svg);

    this.stageTable = h(d, "table", "mg-stage-table");
    const head = h(d, "tr");
    for (const [name, , right] of STAGE_COLUMNS) head.append(h(d, "th", right ? "mg-num" : "", name));
    this.stageTable.append(h(d, "thead"), h(d, "tbody"));
    this.stageTable.tHead.append(head);
    this.stageBody = this.stageTable.tBodies[0];
    const stageWrap = h(d, "div", "mg-table-wrap");
    stageWrap.append(this.stageTable);

    this.errorSection = h(d, "div", "mg-errors");
    this.errorSection.hidden = true;
    this.errorTitle = h(d, "div", "mg-errors-title", "Errors");
    this.errorTable = h(d, "table", "mg-error-table");
    const ehead = h(d, "tr");
    for (const [name] of ERROR_COLUMNS) ehead.append(h(d, "th", "", name));
    this.errorTable.append(h(d, "thead"), h(d, "tbody"));
    this.errorTable.tHead.append(ehead);
    this.errorBody = this.errorTable.tBodies[0];
    this.onErrorClick = (ev) => {
      const tr = ev.target && ev.target.closest ? ev.target.closest("tr.mg-error-row") : null;
      if (tr) this.toggleError(Number(tr.getAttribute("data-id")));
    };
    this.onErrorKey = (ev) => {
      if (ev.key !== "Enter" && ev.key !== " ") return;
      const tr = ev.target && ev.target.closest ? ev.target.closest("tr.mg-error-row") : null;
      if (tr) {
        ev.preventDefault();
        this.toggleError(Number(tr.getAttribute("data-id")));
      }
    };
    this.errorBody.addEventListener("click", this.onErrorClick);
    this.errorBody.addEventListener("keydown", this.onErrorKey);
    this.errorWrap = h(d, "div", "mg-error-wrap");
    this.errorWrap.append(this.errorTable);
    this.more = h(d, "div", "mg-more");
    this.more.hidden = true;
    this.errorSection.append(this.errorTitle, this.errorWrap, this.more);

    this.root.append(this.notice, this.runline, this.hint, this.dag, stageWrap, this.errorSection);
  }

  /** Apply a (partial) state `{graph?, stats?, run?, errors?}`; absent keys keep their value. */
  update(state) {
    if (!state) return;
    if ("graph" in state) this.setGraph(state.graph);
    if ("stats" in state) this.state.stats = state.stats || {};
    if ("run" in state) this.state.run = state.run || {};
    if ("stats" in state || "run" in state || "graph" in state) {
      this.applyStats();
      this.applyRun();
    }
    if ("errors" in state) this.applyErrors(state.errors || []);
    else if ("run" in state) this.applyErrorCount();
  }

  setGraph(graph) {
    const key = JSON.stringify(graph || null);
    if (key === this.graphKey) return; // the same graph again: keep the DOM
    this.graphKey = key;
    this.state.graph = graph || null;
    this.buildGraph();
    this.buildStageRows();
  }

  // ---- DAG --------------------------------------------------------------------------

  buildGraph() {
    const d = this.doc;
    const g = this.state.graph || { nodes: [], edges: [] };
    const w = num(g.node_width) || 170;
    const hgt = num(g.node_height) || 64;
    // Room above the top row for the bottleneck / stalled badges.
    const pad = 18;
    const width = num(g.width) || 1 + Math.max(0, ...(g.nodes || []).map((n) => num(n.x) + w / 2));
    const height = num(g.height) || 1 + Math.max(0, ...(g.nodes || []).map((n) => num(n.y) + hgt / 2));
    this.svg.replaceChildren();
    setAttr(this.svg, "viewBox", `0 ${-pad} ${width} ${height + pad}`);
    setAttr(this.svg, "width", width);
    setAttr(this.svg, "height", height + pad);
    setAttr(this.svg, "data-direction", g.direction || "LR");
    this.nodes = new Map();
    this.edges = [];

    const edgeLayer = s(d, "g", {}, "mg-edges");
    for (const e of g.edges || []) {
      const pts = (e.points || []).filter((p) => Array.isArray(p) && p.length >= 2);
      if (pts.length < 2) continue;
      const path = s(d, "path", { d: pts.map((p, i) => `${i ? "L" : "M"}${p[0]} ${p[1]}`).join(" ") },
        `mg-edge mg-edge-${e.kind || "default"}`);
      path.setAttribute("data-source", e.source);
      path.setAttribute("data-target", e.target);
      // The arrowhead is a polygon of its own: SVG markers need document-wide ids, which
      // two dashboards in one notebook would share.
      const [x0, y0] = pts[pts.length - 2];
      const [x1, y1] = pts[pts.length - 1];
      const a = Math.atan2(y1 - y0, x1 - x0);
      const tip = (da, r) => `${x1 - r * Math.cos(a + da)},${y1 - r * Math.sin(a + da)}`;
      const head = s(d, "polygon", { points: `${x1},${y1} ${tip(0.45, 8)} ${tip(-0.45, 8)}` }, "mg-arrow");
      edgeLayer.append(path, head);
      this.edges.push({ source: e.source, path, head });
    }

    const nodeLayer = s(d, "g", {}, "mg-nodes");
    for (const n of g.nodes || []) {
      const gx = s(d, "g", { transform: `translate(${num(n.x) - w / 2},${num(n.y) - hgt / 2})` },
        `mg-node mg-kind-${n.kind || "processor"}`);
      gx.setAttribute("data-stage", n.id);
      const title = s(d, "title");
      const box = s(d, "rect", { width: w, height: hgt, rx: 6 }, "mg-box");
      const stripe = s(d, "rect", { width: 4, height: hgt - 8, x: 2, y: 4, rx: 2 }, "mg-stripe");
      // Operators (batch, debatch, rebatch) run inline: their kind says more than a backend.
      const backendText = OPERATORS.has(n.kind) ? n.kind : `${n.backend || ""}\u00d7${n.workers ?? ""}`;
      const backend = s(d, "text", { x: w - 8, y: 15, "text-anchor": "end" }, "mg-backend");
      backend.textContent = backendText;
      // SVG text does not wrap or clip: cut the label to what fits beside backend x workers.
      const room = Math.max(4, Math.floor((w - 26 - backendText.length * BACKEND_CHAR_PX) / NAME_CHAR_PX));
      const name = s(d, "text", { x: 10, y: 15 }, "mg-name");
      name.textContent = truncate(n.label ?? n.id, room);
      const counts = s(d, "text", { x: 10, y: 31 }, "mg-counts");
      const done = s(d, "tspan", {}, "mg-done");
      const failed = s(d, "tspan", {}, "mg-failed");
      // A producer takes no input: what it has done is what it emitted.
      const producer = n.kind === "producer";
      const doneLabel = s(d, "tspan", {}, "mg-unit");
      doneLabel.textContent = producer ? " emitted \u00b7 " : " done \u00b7 ";
      const failedLabel = s(d, "tspan", {}, "mg-unit");
      failedLabel.textContent = " failed";
      counts.append(done, doneLabel, failed, failedLabel);
      const rate = s(d, "text", { x: 10, y: 46 }, "mg-rate");
      const lat = s(d, "text", { x: w - 8, y: 46, "text-anchor": "end" }, "mg-lat");
      const qbg = s(d, "rect", { x: 10, y: hgt - 10, width: w - 20, height: 4, rx: 2 }, "mg-qbg");
      const qfill = s(d, "rect", { x: 10, y: hgt - 10, width: 0, height: 4, rx: 2 }, "mg-qfill");
      const badge = s(d, "text", { x: w / 2, y: -5, "text-anchor": "middle" }, "mg-badge");
      gx.append(title, box, stripe, name, backend, counts, rate, lat, qbg, qfill, badge);
      nodeLayer.append(gx);
      this.nodes.set(n.id, { g: gx, title, producer, done, failed, rate, lat, qbg, qfill, badge, qwidth: w - 20 });
    }
    this.svg.append(edgeLayer, nodeLayer);
  }

  applyStats() {
    const stats = this.state.stats || {};
    const run = this.state.run || {};
    for (const [path, n] of this.nodes) {
      const st = stats[path] || {};
      setStatusClass(n.g, st.status || "pending");
      toggleClass(n.g, "mg-bottleneck", run.bottleneck === path);
      toggleClass(n.g, "mg-stalled", !!st.stalled);
      toggleClass(n.g, "mg-active", !!st.active);
      const count = n.producer ? num(st.items_out) : num(st.done);
      setText(n.done, formatCount(count));
      setAttr(n.done, "data-value", count);
      setText(n.failed, formatCount(num(st.failed)));
      setAttr(n.failed, "data-value", num(st.failed));
      toggleClass(n.g, "mg-has-failed", num(st.failed) > 0);
      const rateText = `${formatRate(num(st.throughput))}/s`;
      setText(n.rate, rateText);
      const latText = st.p50_ms === null || st.p50_ms === undefined ? ""
        : `p50 ${formatMs(st.p50_ms)} \u00b7 p99 ${formatMs(st.p99_ms)} ms`;
      setText(n.lat, latText);
      fitWidth(n.lat, latText, n.qwidth + 2 - rateText.length * RATE_CHAR_PX - 6, LAT_CHAR_PX);
      const size = n.producer ? 0 : num(st.queue_size); // no input queue to fill
      const fill = size > 0 ? Math.min(1, Math.max(0, num(st.queue_depth) / size)) : 0;
      setAttr(n.qfill, "width", (fill * n.qwidth).toFixed(1));
      toggleClass(n.qfill, "mg-qfull", fill >= 0.9);
      toggleClass(n.qbg, "mg-hidden", size <= 0);
      toggleClass(n.qfill, "mg-hidden", size <= 0);
      const badges = [];
      if (run.bottleneck === path) badges.push("bottleneck");
      if (st.stalled) badges.push(`stalled ${formatDuration(num(st.oldest_s))}`);
      setText(n.badge, badges.join(" \u00b7 "));
      const tip = [path, `${st.status || "pending"}: ${formatCount(count)} ${n.producer ? "emitted" : "done"}, ` +
        `${formatCount(num(st.failed))} failed` + (size ? `, queue ${num(st.queue_depth)}/${size}` : "")];
      if (st.oldest_s !== null && st.oldest_s !== undefined) tip.push(`oldest item in flight: ${formatDuration(st.oldest_s)}`);
      if (st.peek !== null && st.peek !== undefined) tip.push(`last output: ${truncate(st.peek, PEEK_CHARS)}`);
      setText(n.title, tip.join("\n"));
    }
    for (const e of this.edges) {
      const active = !!(stats[e.source] && stats[e.source].active);
      toggleClass(e.path, "mg-active", active);
      toggleClass(e.head, "mg-active", active);
    }
    this.applyStageRows();
  }

  // ---- stage table ------------------------------------------------------------------

  buildStageRows() {
    this.stageBody.replaceChildren();
    this.stageRows = new Map();
    for (const n of (this.state.graph && this.state.graph.nodes) || []) this.addStageRow(n.id);
  }

  addStageRow(path) {
    const d = this.doc;
    const tr = h(d, "tr");
    tr.setAttribute("data-stage", path);
    const cells = STAGE_COLUMNS.map(([, , right], i) => h(d, "td", right ? "mg-num" : i === 0 ? "mg-path" : ""));
    tr.append(...cells);
    this.stageBody.append(tr);
    this.stageRows.set(path, { tr, cells });
  }

  applyStageRows() {
    const stats = this.state.stats || {};
    // Stages not in the graph (e.g. a graph not sent yet) still get a row.
    for (const path of Object.keys(stats)) if (!this.stageRows.has(path)) this.addStageRow(path);
    const bottleneck = (this.state.run || {}).bottleneck;
    for (const [path, row] of this.stageRows) {
      const st = stats[path] || {};
      STAGE_COLUMNS.forEach(([, cell], i) => setText(row.cells[i], cell(path, st)));
      const peek = st.peek === null || st.peek === undefined ? "" : truncate(st.peek, PEEK_CHARS);
      setAttr(row.cells[STAGE_COLUMNS.length - 1], "title", peek);
      setStatusClass(row.cells[1], st.status || "pending");
      toggleClass(row.tr, "mg-bottleneck", bottleneck === path);
      toggleClass(row.tr, "mg-stalled", !!st.stalled);
    }
  }

  // ---- run line, Stop, notice ------------------------------------------------------

  applyRun() {
    const run = this.state.run || {};
    const status = run.status || "pending";
    setAttr(this.root, "data-status", status);
    setText(this.pipeline, run.pipeline || "");
    setText(this.status, status);
    setStatusClass(this.status, status);
    setText(this.elapsed, formatElapsed(run.elapsed_s));
    const c = pipelineCounts(this.state.graph, this.state.stats);
    setText(this.totals, `${formatCount(c.done)} done \u00b7 ${formatCount(c.failed)} failed \u00b7 ${formatRate(c.rate)} items/s`);
    const stopping = status === "stopping";
    setFlag(this.left, "hidden", !(stopping && run.left !== null && run.left !== undefined));
    setText(this.left, this.left.hidden ? "" : `${formatCount(run.left)} left`);
    setFlag(this.hint, "hidden", !run.hint);
    setText(this.hint, run.hint || "");

    if (status !== "running" && status !== "pending") {
      this.cancelStopTimer();
      this.localNotice = null; // the kernel answered (or the run ended): the note is moot
    }
    const ended = ENDED.has(status);
    setFlag(this.stop, "disabled", ended || this.stopSent === "cancel");
    let label = "Stop";
    if (!ended && (stopping || this.stopSent)) label = this.stopSent === "cancel" ? "Cancelling\u2026" : "Cancel";
    setText(this.stop, label);
    setAttr(this.stop, "title", label === "Cancel"
      ? "Cancel the run: drop what is still queued" : "Stop the run: finish what is queued, take no new items");
    this.applyNotice();
  }

  applyNotice() {
    const text = (this.state.run || {}).notice || this.localNotice;
    setFlag(this.notice, "hidden", !text);
    setText(this.notice, text || "");
  }

  clickStop() {
    const status = (this.state.run || {}).status || "pending";
    if (ENDED.has(status) || this.stopSent === "cancel") return;
    if (status === "stopping" || this.stopSent === "drain") {
      this.stopSent = "cancel";
      this.send({ type: "stop", drain: false });
    } else {
      this.stopSent = "drain";
      this.send({ type: "stop" });
      // The kernel answers by setting run.status to "stopping"; a cell that blocks in run()
      // may never see the message, and then only the kernel's Interrupt button stops it.
      this.cancelStopTimer();
      this.stopTimer = this.setTimeout(() => {
        this.stopTimer = null;
        const st = (this.state.run || {}).status || "pending";
        if (st === "running" || st === "pending") {
          this.localNotice = INTERRUPT_NOTE;
          this.applyNotice();
        }
      }, STOP_ANSWER_MS);
    }
    this.applyRun();
  }

  cancelStopTimer() {
    if (this.stopTimer !== null) this.clearTimeout(this.stopTimer);
    this.stopTimer = null;
  }

  // ---- errors -----------------------------------------------------------------------

  applyErrors(rows) {
    const d = this.doc;
    this.state.errors = rows;
    const seen = new Set();
    let prev = null;
    for (const r of rows) {
      const id = Number(r.id);
      seen.add(id);
      let row = this.errorRows.get(id);
      if (!row) {
        const tr = h(d, "tr", "mg-error-row");
        tr.setAttribute("data-id", String(id));
        tr.tabIndex = 0;
        const cells = ERROR_COLUMNS.map(() => h(d, "td"));
        tr.append(...cells);
        row = { tr, cells, detail: null, traceback: null };
        this.errorRows.set(id, row);
      }
      ERROR_COLUMNS.forEach(([, cell], i) => setText(row.cells[i], cell(r)));
      setAttr(row.cells[2], "title", r.message ?? "");
      // A row's traceback is dropped from the trait once 20 newer rows exist; the page keeps
      // the one it has seen, so an open row does not empty itself under the reader's eyes.
      row.traceback = r.traceback ?? row.traceback;
      // The table follows the order of `rows`; a row already in place is not touched
      // (moving nodes at 10 Hz would be churn, and could lose focus or selection).
      const want = prev ? (prev.detail || prev.tr).nextSibling : this.errorBody.firstChild;
      if (want !== row.tr) this.errorBody.insertBefore(row.tr, want);
      this.renderDetail(id, row);
      prev = row;
    }
    for (const [id, row] of this.errorRows) {
      if (seen.has(id)) continue;
      row.tr.remove();
      if (row.detail) row.detail.remove();
      this.errorRows.delete(id);
      this.expanded.delete(id);
    }
    this.applyErrorCount();
  }

  applyErrorCount() {
    const rows = this.state.errors || [];
    const total = num((this.state.run || {}).errors_total);
    const hidden = Math.max(0, total - rows.length);
    setFlag(this.errorSection, "hidden", rows.length === 0 && total === 0);
    setText(this.errorTitle, `Errors (${formatCount(Math.max(total, rows.length))})`);
    setFlag(this.more, "hidden", hidden === 0);
    setText(this.more, hidden ? `${formatCount(hidden)} more (all of them are in result.errors)` : "");
  }

  renderDetail(id, row) {
    const open = this.expanded.has(id);
    setAttr(row.tr, "aria-expanded", open ? "true" : "false");
    toggleClass(row.tr, "mg-expanded", open);
    if (!open) {
      if (row.detail) row.detail.remove();
      row.detail = null;
      return;
    }
    if (!row.detail) {
      const d = this.doc;
      row.detail = h(d, "tr", "mg-traceback-row");
      const td = h(d, "td");
      td.colSpan = ERROR_COLUMNS.length;
      row.pre = h(d, "pre", "mg-traceback");
      td.append(row.pre);
      row.detail.append(td);
    }
    setText(row.pre, row.traceback ??
      "(traceback not kept: the page keeps those of the last 20 rows and of the first row of each stage and exception)");
    if (row.tr.nextSibling !== row.detail) row.tr.after(row.detail);
  }

  toggleError(id) {
    const row = this.errorRows.get(id);
    if (!row) return;
    if (this.expanded.has(id)) this.expanded.delete(id);
    else this.expanded.add(id);
    this.renderDetail(id, row);
  }

  /** Remove listeners, timers and the DOM. */
  destroy() {
    this.cancelStopTimer();
    this.stop.removeEventListener("click", this.onStop);
    this.errorBody.removeEventListener("click", this.onErrorClick);
    this.errorBody.removeEventListener("keydown", this.onErrorKey);
    this.root.replaceChildren();
    this.root.classList.remove("mg-dash");
  }
}

/** Draw `state` ({graph, stats, run, errors}) into `root`; returns the Dashboard. */
export function renderDashboard(root, state, options = {}) {
  const dash = new Dashboard(root, options);
  dash.update(state);
  return dash;
}

/** anywidget entry point: one Dashboard per view, following the model's four traits. */
function render({ model, el }) {
  const dash = new Dashboard(el, { send: (msg) => model.send(msg) });
  const initial = {};
  for (const name of TRAITS) initial[name] = model.get(name);
  dash.update(initial);
  const handlers = TRAITS.map((name) => {
    const cb = () => dash.update({ [name]: model.get(name) });
    model.on(`change:${name}`, cb);
    return [name, cb];
  });
  return () => {
    for (const [name, cb] of handlers) model.off(`change:${name}`, cb);
    dash.destroy();
  };
}

export default { render };
