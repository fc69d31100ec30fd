// Stop, notices, in-place updates, expandable error rows and cleanup.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";

import widget, { Dashboard, renderDashboard } from "../dashboard.js";
import { HOSTILE, fakeModel, fakeTimers, loadFixture, makeDom, nodeOf } from "./helpers.js";

let dom;
let cleanup;

function mount(state = loadFixture()) {
  dom = makeDom();
  const model = fakeModel(state);
  cleanup = widget.render({ model, el: dom.el });
  return { model, el: dom.el, state };
}

afterEach(async () => {
  if (cleanup) cleanup();
  cleanup = null;
  if (dom) await dom.close();
  dom = null;
});

function errorRow(el, id) {
  return [...el.querySelectorAll(".mg-error-row")].find((r) => r.getAttribute("data-id") === String(id));
}

test("Stop sends {type: 'stop'}; while stopping it reads Cancel and sends drain: false", () => {
  const { el, model, state } = mount();
  const stop = el.querySelector(".mg-stop");
  assert.equal(stop.textContent, "Stop");
  assert.equal(stop.disabled, false);
  stop.click();
  assert.deepEqual(model.sent, [{ type: "stop" }]);
  // The kernel answers: the run is stopping, with items left to drain.
  model.set("run", { ...state.run, status: "stopping", left: 1234 });
  assert.equal(stop.textContent, "Cancel");
  assert.equal(el.querySelector(".mg-status").textContent, "stopping");
  const left = el.querySelector(".mg-left");
  assert.equal(left.hidden, false);
  assert.equal(left.textContent, "1234 left");
  stop.click();
  assert.deepEqual(model.sent, [{ type: "stop" }, { type: "stop", drain: false }]);
  assert.equal(stop.disabled, true, "a cancel is sent once");
  stop.click();
  assert.equal(model.sent.length, 2);
  model.set("run", { ...state.run, status: "cancelled", left: null });
  assert.equal(stop.disabled, true);
  assert.equal(stop.textContent, "Stop");
  assert.equal(left.hidden, true);
});

test("a run already stopping (Interrupt pressed) cancels on the first click", () => {
  const state = loadFixture();
  state.run = { ...state.run, status: "stopping", left: 7 };
  const { el, model } = mount(state);
  const stop = el.querySelector(".mg-stop");
  assert.equal(stop.textContent, "Cancel");
  stop.click();
  assert.deepEqual(model.sent, [{ type: "stop", drain: false }]);
});

test("Stop is disabled once the run has ended, and sends nothing", () => {
  for (const status of ["done", "failed", "stopped", "cancelled"]) {
    const state = loadFixture();
    state.run.status = status;
    const { el, model } = mount(state);
    const stop = el.querySelector(".mg-stop");
    assert.equal(stop.disabled, true, status);
    stop.click();
    assert.deepEqual(model.sent, [], status);
    cleanup();
    cleanup = null;
  }
});

test("run.notice is shown above the DAG while it is set", () => {
  const { el, model, state } = mount();
  const notice = el.querySelector(".mg-notice");
  assert.equal(notice.hidden, true);
  const text = `Press the kernel's Interrupt button to stop ${HOSTILE}`;
  model.set("run", { ...state.run, notice: text });
  assert.equal(notice.hidden, false);
  assert.equal(notice.textContent, text);
  assert.equal(el.getElementsByTagName("img").length, 0);
  const order = [...el.children];
  assert.ok(order.indexOf(notice) < order.indexOf(el.querySelector(".mg-dag")));
  model.set("run", { ...state.run, notice: null });
  assert.equal(notice.hidden, true);
});

test("an unanswered Stop says to press Interrupt; an answered one does not", () => {
  dom = makeDom();
  const timers = fakeTimers();
  const sent = [];
  const state = loadFixture();
  const dash = renderDashboard(dom.el, state, { send: (m) => sent.push(m), ...timers });
  const notice = dom.el.querySelector(".mg-notice");
  dom.el.querySelector(".mg-stop").click();
  assert.deepEqual([...timers.pending.values()].map((t) => t.ms), [2000]);
  timers.fire(); // the kernel never answered: status is still "running"
  assert.equal(notice.hidden, false);
  assert.match(notice.textContent, /Interrupt/);
  // Once the kernel answers, the local note goes.
  dash.update({ run: { ...state.run, status: "stopping" } });
  assert.equal(notice.hidden, true);
  dash.destroy();

  const dash2 = renderDashboard(dom.el, state, { send: () => {}, ...timers });
  dom.el.querySelector(".mg-stop").click();
  dash2.update({ run: { ...state.run, status: "stopping" } });
  assert.equal(timers.pending.size, 0, "the answer cancels the timer");
  assert.equal(dom.el.querySelector(".mg-notice").hidden, true);
  dash2.destroy();
});

test("a stats update changes the numbers in place, without recreating nodes or rows", () => {
  const { el, model, state } = mount();
  const svg = el.querySelector(".mg-dag svg");
  const node = nodeOf(el, "parse");
  const done = node.querySelector(".mg-done");
  const row = [...el.querySelectorAll(".mg-stage-table tr[data-stage]")].find((r) => r.getAttribute("data-stage") === "parse");
  const before = [...svg.querySelectorAll("*")];
  const stats = structuredClone(state.stats);
  stats.parse = { ...stats.parse, done: 4321, items_in: 4400, throughput: 55.5, queue_depth: 100 };
  model.set("stats", stats);
  assert.equal(nodeOf(el, "parse"), node);
  assert.equal(node.querySelector(".mg-done"), done);
  assert.equal(done.textContent, "4321");
  assert.equal(done.getAttribute("data-value"), "4321");
  assert.equal(node.querySelector(".mg-rate").textContent, "55.5/s");
  const after = [...svg.querySelectorAll("*")];
  assert.equal(after.length, before.length);
  assert.ok(after.every((e, i) => e === before[i]), "the same SVG elements");
  const again = [...el.querySelectorAll(".mg-stage-table tr[data-stage]")].find((r) => r.getAttribute("data-stage") === "parse");
  assert.equal(again, row);
  assert.equal(row.children[4].textContent, "4321");
  // The same graph sent again keeps the DOM; a different one is drawn afresh.
  model.set("graph", structuredClone(state.graph));
  assert.equal(nodeOf(el, "parse"), node);
  const graph = structuredClone(state.graph);
  graph.nodes[1].label = "parse_v2";
  model.set("graph", graph);
  assert.notEqual(nodeOf(el, "parse"), node);
  assert.equal(nodeOf(el, "parse").querySelector(".mg-name").textContent, "parse_v2");
  assert.equal(nodeOf(el, "parse").querySelector(".mg-done").textContent, "4321");
});

test("an expanded error row stays expanded when new rows arrive", () => {
  const { el, model, state } = mount();
  assert.equal(el.querySelectorAll(".mg-error-row").length, 4);
  assert.equal(el.querySelector(".mg-traceback"), null);
  const row = errorRow(el, 56);
  row.click();
  const pre = row.nextElementSibling.querySelector("pre.mg-traceback");
  assert.ok(pre);
  assert.equal(pre.textContent, state.errors[3].traceback);
  assert.equal(row.getAttribute("aria-expanded"), "true");
  // The next refresh: two new rows, the oldest one dropped, the total up.
  const fresh = [57, 58].map((id) => ({ ...state.errors[3], id, message: `boom ${id}` }));
  model.set("run", { ...state.run, errors_total: 59 });
  model.set("errors", [...state.errors.slice(1), ...fresh]);
  assert.deepEqual([...el.querySelectorAll(".mg-error-row")].map((r) => r.getAttribute("data-id")),
    ["20", "41", "56", "57", "58"]);
  assert.equal(errorRow(el, 56), row, "the same row element");
  assert.equal(row.nextElementSibling.querySelector("pre.mg-traceback"), pre);
  assert.equal(el.querySelectorAll(".mg-traceback").length, 1);
  assert.equal(errorRow(el, 57).children[2].textContent, "boom 57");
  assert.equal(el.querySelector(".mg-more").textContent, "54 more (all of them are in result.errors)");
  // Twenty rows later its traceback leaves the trait: the page keeps the one it showed.
  const later = [...state.errors.slice(1, 3), { ...state.errors[3], traceback: null }, ...fresh];
  model.set("errors", later);
  assert.equal(row.nextElementSibling.querySelector("pre.mg-traceback").textContent, state.errors[3].traceback);
  // A click closes it again.
  row.click();
  assert.equal(el.querySelector(".mg-traceback"), null);
  assert.equal(row.getAttribute("aria-expanded"), "false");
});

test("a row whose traceback was not kept says so; Enter toggles a row", () => {
  const { el } = mount();
  const row = errorRow(el, 20);
  const KeyboardEvent = dom.window.KeyboardEvent;
  row.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  assert.match(row.nextElementSibling.textContent, /traceback not kept/);
  row.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  assert.equal(el.querySelector(".mg-traceback"), null);
});

test("the error table says how many rows are not shown", () => {
  const { el, model, state } = mount();
  assert.equal(el.querySelector(".mg-more").textContent, "53 more (all of them are in result.errors)");
  assert.match(el.querySelector(".mg-errors-title").textContent, /Errors \(57\)/);
  model.set("run", { ...state.run, errors_total: 4 });
  assert.equal(el.querySelector(".mg-more").hidden, true);
  model.set("errors", []);
  model.set("run", { ...state.run, errors_total: 0 });
  assert.equal(el.querySelector(".mg-errors").hidden, true);
});

test("cleanup removes the model listeners and the DOM", () => {
  const { el, model, state } = mount();
  assert.equal(model.listenerCount(), 4);
  cleanup();
  cleanup = null;
  assert.equal(model.listenerCount(), 0);
  assert.equal(el.children.length, 0);
  assert.ok(!el.classList.contains("mg-dash"));
  model.set("stats", state.stats); // nobody listens any more
  assert.equal(el.children.length, 0);
});

test("cleanup cancels a pending Stop timer", () => {
  dom = makeDom();
  const timers = fakeTimers();
  const dash = new Dashboard(dom.el, { send: () => {}, ...timers });
  dash.update(loadFixture());
  dom.el.querySelector(".mg-stop").click();
  assert.equal(timers.pending.size, 1);
  dash.destroy();
  assert.equal(timers.pending.size, 0);
});

test("a graph that comes after the stats still draws every stage", () => {
  const state = loadFixture();
  dom = makeDom();
  const dash = renderDashboard(dom.el, { stats: state.stats, run: state.run, errors: [] });
  // Stage rows exist from the stats alone; the DAG waits for its graph.
  assert.equal(dom.el.querySelectorAll(".mg-stage-table tr[data-stage]").length, 5);
  assert.equal(dom.el.querySelectorAll(".mg-node").length, 0);
  dash.update({ graph: state.graph });
  assert.equal(dom.el.querySelectorAll(".mg-node").length, 5);
  assert.equal(nodeOf(dom.el, "parse").querySelector(".mg-done").textContent, "4100");
  dash.destroy();
});

test("empty traits (a widget before its first refresh) render without errors", () => {
  const { el } = mount({ graph: {}, stats: {}, run: {}, errors: [] });
  assert.equal(el.querySelector(".mg-status").textContent, "pending");
  assert.equal(el.querySelector(".mg-elapsed").textContent, "00:00");
  assert.equal(el.querySelectorAll(".mg-node").length, 0);
  assert.equal(el.querySelector(".mg-stop").disabled, false);
});

test("a refresh that changes nothing writes nothing to the DOM", async () => {
  const { el, model, state } = mount();
  nodeOf(el, "parse"); // rendered
  const records = [];
  const observer = new dom.window.MutationObserver((list) => records.push(...list));
  observer.observe(el, { subtree: true, childList: true, attributes: true, characterData: true });
  model.set("stats", structuredClone(state.stats));
  model.set("run", structuredClone(state.run));
  model.set("errors", structuredClone(state.errors));
  await new Promise((resolve) => setTimeout(resolve, 0));
  records.push(...observer.takeRecords());
  assert.deepEqual(records.map((r) => `${r.type} ${r.attributeName || ""} ${r.target.className || r.target.nodeName}`), []);
  // ... and the check can fail: a real change is seen.
  const stats = structuredClone(state.stats);
  stats.save.done += 1;
  model.set("stats", stats);
  await new Promise((resolve) => setTimeout(resolve, 0));
  records.push(...observer.takeRecords());
  observer.disconnect();
  assert.ok(records.length > 0);
});
