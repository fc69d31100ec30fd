// The dashboard rendered from the shared fixture through anywidget's render({model, el}).
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";

import widget from "../dashboard.js";
import { HOSTILE, fakeModel, loadFixture, makeDom, nodeOf } from "./helpers.js";

let dom;
let cleanup;

function mount(state = loadFixture()) {
  dom = makeDom();
  const model = fakeModel(state);
  cleanup = widget.render({ model, el: dom.el });
  return { model, el: dom.el, document: dom.document, state };
}

afterEach(async () => {
  if (cleanup) cleanup();
  cleanup = null;
  if (dom) await dom.close();
  dom = null;
});

test("render returns a cleanup function and marks the root", () => {
  const { el } = mount();
  assert.equal(typeof cleanup, "function");
  assert.ok(el.classList.contains("mg-dash"));
  for (const hook of [".mg-runline", ".mg-status", ".mg-stop", ".mg-stage-table", ".mg-error-table"]) {
    assert.ok(el.querySelector(hook), `missing ${hook}`);
  }
});

test("one DAG node per stage, keyed by its path, with one edge and arrowhead per graph edge", () => {
  const { el, state } = mount();
  const nodes = [...el.querySelectorAll(".mg-dag svg .mg-node[data-stage]")];
  assert.deepEqual(nodes.map((g) => g.getAttribute("data-stage")), state.graph.nodes.map((n) => n.id));
  assert.equal(nodes.length, 5);
  assert.equal(el.querySelectorAll(".mg-edge").length, state.graph.edges.length);
  assert.equal(el.querySelectorAll(".mg-arrow").length, state.graph.edges.length);
  const fanout = [...el.querySelectorAll(".mg-edge")].filter((p) => p.getAttribute("data-source") === "parse");
  assert.deepEqual(fanout.map((p) => p.getAttribute("data-target")), ["inner/work", HOSTILE]);
  // The edge follows the layout's polyline.
  assert.equal(el.querySelector(".mg-edge").getAttribute("d"), "M190 96 L254 96");
});

test("each node shows its label, backend x workers, counts, rate and latency", () => {
  const { el } = mount();
  const parse = nodeOf(el, "parse");
  assert.equal(parse.querySelector(".mg-name").textContent, "parse");
  assert.equal(parse.querySelector(".mg-backend").textContent, "thread\u00d74");
  assert.equal(parse.querySelector(".mg-done").textContent, "4100");
  assert.equal(parse.querySelector(".mg-done").getAttribute("data-value"), "4100");
  assert.equal(parse.querySelector(".mg-rate").textContent, "49.2/s");
  assert.match(parse.querySelector(".mg-lat").textContent, /p50 12\.5 \u00b7 p99 48\.0 ms/);
  const nested = nodeOf(el, "inner/work");
  assert.equal(nested.querySelector(".mg-name").textContent, "work");
  assert.equal(nested.querySelector(".mg-backend").textContent, "process\u00d72");
  const hostile = nodeOf(el, HOSTILE);
  assert.equal(hostile.querySelector(".mg-failed").textContent, "57");
  assert.ok(hostile.classList.contains("mg-has-failed"));
  // A producer has no latency yet and no input queue: no numbers made up for it.
  const gen = nodeOf(el, "gen");
  assert.equal(gen.querySelector(".mg-done").getAttribute("data-value"), "5000");
  assert.match(gen.querySelector(".mg-counts").textContent, /^5000 emitted/);
  assert.equal(gen.querySelector(".mg-lat").textContent, "");
  assert.ok(gen.querySelector(".mg-qfill").classList.contains("mg-hidden"));
  assert.ok(gen.classList.contains("mg-st-done"));
  assert.ok(parse.classList.contains("mg-st-running"));
});

test("the queue bar is as full as the stage's queue", () => {
  const { el, state } = mount();
  const width = state.graph.node_width - 20;
  const parse = nodeOf(el, "parse").querySelector(".mg-qfill");
  assert.equal(Number(parse.getAttribute("width")), Number((0.896 * width).toFixed(1)));
  assert.ok(!parse.classList.contains("mg-qfull"));
  const work = nodeOf(el, "inner/work").querySelector(".mg-qfill");
  assert.equal(Number(work.getAttribute("width")), width);
  assert.ok(work.classList.contains("mg-qfull"));
});

test("the bottleneck is highlighted, in the DAG and in the stage table", () => {
  const { el, model, state } = mount();
  const marked = [...el.querySelectorAll(".mg-node.mg-bottleneck")].map((g) => g.getAttribute("data-stage"));
  assert.deepEqual(marked, ["inner/work"]);
  assert.match(nodeOf(el, "inner/work").querySelector(".mg-badge").textContent, /bottleneck/);
  const rows = [...el.querySelectorAll(".mg-stage-table tr.mg-bottleneck")];
  assert.deepEqual(rows.map((r) => r.getAttribute("data-stage")), ["inner/work"]);
  // The bottleneck moves with the run trait alone.
  model.set("run", { ...state.run, bottleneck: "parse" });
  assert.ok(nodeOf(el, "parse").classList.contains("mg-bottleneck"));
  assert.ok(!nodeOf(el, "inner/work").classList.contains("mg-bottleneck"));
  assert.equal(nodeOf(el, "inner/work").querySelector(".mg-badge").textContent, "");
});

test("a stalled stage is marked with the age of its oldest item", () => {
  const { el, model, state } = mount();
  const node = nodeOf(el, HOSTILE);
  assert.ok(node.classList.contains("mg-stalled"));
  assert.match(node.querySelector(".mg-badge").textContent, /stalled 42\.5s/);
  assert.equal(el.querySelectorAll(".mg-node.mg-stalled").length, 1);
  const stats = structuredClone(state.stats);
  stats[HOSTILE].stalled = false;
  model.set("stats", stats);
  assert.ok(!node.classList.contains("mg-stalled"));
  assert.equal(node.querySelector(".mg-badge").textContent, "");
});

test("a node's tooltip holds its peek, cut to 200 characters", () => {
  const { el, state } = mount();
  const title = nodeOf(el, "inner/work").querySelector("title").textContent;
  const peek = state.stats["inner/work"].peek;
  assert.ok(peek.length > 200);
  const line = title.split("\n").find((l) => l.startsWith("last output: "));
  assert.equal(line.length, "last output: ".length + 200);
  assert.ok(line.endsWith("\u2026"));
  assert.ok(peek.startsWith(line.slice("last output: ".length, -1)));
  const cell = [...el.querySelectorAll(".mg-stage-table tr[data-stage]")]
    .find((r) => r.getAttribute("data-stage") === "parse").lastElementChild;
  assert.equal(cell.textContent, state.stats.parse.peek);
});

test("edges whose source emitted lately are marked active (animated by the CSS)", () => {
  const { el } = mount();
  const active = [...el.querySelectorAll(".mg-edge.mg-active")].map((p) => p.getAttribute("data-source"));
  assert.deepEqual(active, ["parse", "parse", "inner/work", HOSTILE]);
  assert.ok(!el.querySelector('.mg-edge[data-source="gen"]').classList.contains("mg-active"));
});

test("the run line shows status, elapsed mm:ss, totals, items/s and the hint", () => {
  const { el, state } = mount();
  assert.equal(el.querySelector(".mg-status").textContent, "running");
  assert.equal(el.getAttribute("data-status"), "running");
  assert.equal(el.querySelector(".mg-elapsed").textContent, "01:23");
  // done and items/s are those of what leaves the pipeline: its one terminal stage, `save`.
  assert.equal(el.querySelector(".mg-totals").textContent, "5448 done \u00b7 57 failed \u00b7 65.3 items/s");
  assert.equal(el.querySelector(".mg-pipeline").textContent, "etl");
  assert.equal(el.querySelector(".mg-hint").textContent, state.run.hint);
  assert.ok(el.querySelector(".mg-left").hidden);
});

test("the hostile payload shows as text everywhere and creates no element", () => {
  const { el, document } = mount();
  const node = nodeOf(el, HOSTILE);
  assert.ok(node, "the hostile stage has its node");
  assert.equal(node.querySelector(".mg-name").textContent.slice(0, 10), HOSTILE.slice(0, 10));
  const rows = [...el.querySelectorAll(".mg-error-row")];
  assert.equal(rows[0].children[0].textContent, HOSTILE);
  assert.ok(rows[0].children[2].textContent.includes(HOSTILE));
  assert.ok(rows[0].children[3].textContent.includes(HOSTILE));
  rows[0].click();
  assert.ok(el.querySelector(".mg-traceback").textContent.includes(HOSTILE));
  assert.ok(el.querySelector(".mg-hint").textContent.includes(HOSTILE));
  assert.ok(el.textContent.includes(HOSTILE));
  assert.equal(document.querySelectorAll("img").length, 0);
  assert.equal(el.getElementsByTagName("img").length, 0);
  // The check can fail: the same text parsed as markup does make an <img>.
  const probe = document.createElement("div");
  probe["inner" + "HTML"] = HOSTILE;
  assert.equal(probe.getElementsByTagName("img").length, 1);
});

test("a stage table row per stage, with the stats columns", () => {
  const { el } = mount();
  const head = [...el.querySelectorAll(".mg-stage-table th")].map((th) => th.textContent);
  for (const col of ["stage", "status", "in", "out", "done", "failed", "items/s", "busy %", "queue", "p50 ms", "p99 ms"]) {
    assert.ok(head.includes(col), `column ${col}`);
  }
  const rows = [...el.querySelectorAll(".mg-stage-table tbody tr[data-stage]")];
  assert.equal(rows.length, 5);
  const parse = rows.find((r) => r.getAttribute("data-stage") === "parse");
  const cell = (name) => parse.children[head.indexOf(name)].textContent;
  assert.equal(cell("stage"), "parse");
  assert.equal(cell("in"), "4104");
  assert.equal(cell("busy %"), "41");
  assert.equal(cell("queue"), "896/1000");
  assert.equal(cell("p99 ms"), "48.0");
});

test("texts that would overflow a box are cut or condensed to fit it", () => {
  const state = loadFixture();
  state.stats.parse.p50_ms = 0.0123;
  state.stats.parse.p99_ms = 12345.6;
  state.stats.parse.throughput = 45678.9;
  const { el, model } = mount(state);
  const lat = nodeOf(el, "parse").querySelector(".mg-lat");
  assert.equal(lat.textContent, "p50 0.012 \u00b7 p99 12.3k ms");
  const room = Number(lat.getAttribute("textLength"));
  assert.ok(room > 0 && room < state.graph.node_width - 20, `textLength ${room}`);
  assert.equal(lat.getAttribute("lengthAdjust"), "spacingAndGlyphs");
  // One that fits is left alone (and the condensing goes when it fits again).
  const fits = structuredClone(state.stats);
  fits.parse = { ...fits.parse, throughput: 0, p50_ms: 1, p99_ms: 2 };
  model.set("stats", fits);
  assert.equal(lat.textContent, "p50 1.00 \u00b7 p99 2.00 ms");
  assert.equal(lat.getAttribute("textLength"), null);
  assert.equal(lat.getAttribute("lengthAdjust"), null);
  // A long name is cut with an ellipsis; the tooltip keeps the whole path.
  const name = nodeOf(el, HOSTILE).querySelector(".mg-name").textContent;
  assert.ok(name.length < HOSTILE.length && name.endsWith("\u2026"), name);
  assert.ok(nodeOf(el, HOSTILE).querySelector("title").textContent.startsWith(HOSTILE));
});

test("a top-to-bottom graph is drawn from its own coordinates", () => {
  const state = loadFixture();
  state.graph.direction = "TB";
  state.graph.nodes = state.graph.nodes.map((n, i) => ({ ...n, x: 105, y: 52 + i * 104 }));
  state.graph.edges = state.graph.edges.map((e) => ({ ...e, points: [[105, 10], [105, 40]] }));
  const { el } = mount(state);
  const svg = el.querySelector(".mg-dag svg");
  assert.equal(svg.getAttribute("data-direction"), "TB");
  assert.equal(nodeOf(el, "save").getAttribute("transform"), `translate(20,${52 + 4 * 104 - 32})`);
});

test("an operator shows its kind where a stage shows backend x workers", () => {
  const state = loadFixture();
  state.graph.nodes[1] = { ...state.graph.nodes[1], kind: "batch", backend: "thread", workers: 1 };
  const { el } = mount(state);
  assert.equal(nodeOf(el, "parse").querySelector(".mg-backend").textContent, "batch");
  assert.ok(nodeOf(el, "parse").classList.contains("mg-kind-batch"));
});
