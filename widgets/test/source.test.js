// Properties of the shipped files themselves: no markup parsing, no imports, scoped CSS,
// reduced motion honoured; and the formatters agree with minigun_nb.observe.summary.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import {
  formatCount, formatDuration, formatElapsed, formatMs, formatRate, pipelineCounts, truncate,
} from "../dashboard.js";
import { loadFixture, HOSTILE } from "./helpers.js";

const JS = readFileSync(new URL("../dashboard.js", import.meta.url), "utf8");
const CSS = readFileSync(new URL("../dashboard.css", import.meta.url), "utf8");

test("the ESM never parses text as HTML", () => {
  for (const banned of ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
    "DOMParser", "createContextualFragment", "srcdoc", "eval(", "new Function"]) {
    assert.ok(!JS.includes(banned), `dashboard.js uses ${banned}`);
  }
});

test("the ESM has no run-time dependency (no import at all)", () => {
  assert.doesNotMatch(JS, /^\s*import\b/m);
  assert.doesNotMatch(JS, /\bimport\s*\(/);
  assert.doesNotMatch(JS, /\brequire\s*\(/);
  assert.match(JS, /^export default \{ render \};$/m);
});

test("every CSS rule is scoped under .mg-dash", () => {
  // Drop comments and @keyframes bodies (their selectors are percentages, not elements).
  const css = CSS.replace(/\/\*[\s\S]*?\*\//g, "").replace(/@keyframes\s+[\w-]+\s*\{(?:[^{}]*\{[^{}]*\})*\s*\}/g, "");
  const selectors = [...css.matchAll(/([^{}]+)\{[^{}]*\}/g)].map((m) => m[1].trim())
    .filter((sel) => !sel.startsWith("@"));
  assert.ok(selectors.length > 20);
  for (const group of selectors) {
    for (const sel of group.replace(/^@media[^{]*\{/, "").split(",")) {
      assert.match(sel.trim(), /^\.mg-dash\b/, `unscoped selector: ${sel.trim()}`);
    }
  }
  assert.match(CSS, /@keyframes mg-dash-/, "the animation's name is prefixed too");
});

test("active edges are animated except under prefers-reduced-motion", () => {
  assert.match(CSS, /\.mg-edge\.mg-active\s*\{[^}]*animation:\s*mg-dash-flow[^}]*\}/);
  const reduced = CSS.match(/@media \(prefers-reduced-motion: reduce\)\s*\{([\s\S]*?\})\s*\}/);
  assert.ok(reduced, "a reduced-motion media query");
  assert.match(reduced[1], /\.mg-edge\.mg-active\s*\{[^}]*animation:\s*none/);
});

test("colours come from the JupyterLab and VS Code theme variables, with fallbacks", () => {
  for (const v of ["--jp-ui-font-color1", "--jp-layout-color1", "--jp-border-color2",
    "--jp-brand-color1", "--jp-warn-color1", "--jp-error-color1"]) {
    assert.match(CSS, new RegExp(`var\\(${v}, var\\(--vscode-[\\w-]+, [^)]+\\)\\)`), v);
  }
  // No fixed colour outside the fallbacks of the variable definitions.
  const body = CSS.replace(/--mg-[\w-]+:[^;]+;/g, "");
  assert.doesNotMatch(body, /#[0-9a-fA-F]{3,6}\b|rgb\(/);
});

test("the DOM hooks are documented at the top of the ESM", () => {
  const head = JS.slice(0, JS.indexOf("const SVG_NS"));
  for (const hook of [".mg-dash", ".mg-node[data-stage", ".mg-stop", ".mg-runline", ".mg-status",
    ".mg-stage-table", ".mg-error-table", ".mg-error-row", ".mg-traceback", ".mg-done", ".mg-notice"]) {
    assert.ok(head.includes(hook), hook);
  }
});

test("the fixture is in the trait shapes of docs/displays.md", () => {
  const state = loadFixture();
  assert.deepEqual(Object.keys(state).sort(), ["errors", "graph", "run", "stats"]);
  const { graph, stats, run, errors } = state;
  assert.ok(["LR", "TB"].includes(graph.direction));
  for (const k of ["width", "height", "node_width", "node_height"]) assert.equal(typeof graph[k], "number");
  const ids = graph.nodes.map((n) => n.id);
  assert.deepEqual(ids.slice().sort(), Object.keys(stats).sort());
  assert.ok(ids.includes("inner/work") && ids.includes(HOSTILE));
  for (const n of graph.nodes) {
    assert.deepEqual(Object.keys(n).sort(), ["backend", "id", "kind", "label", "workers", "x", "y"]);
  }
  for (const e of graph.edges) {
    assert.deepEqual(Object.keys(e).sort(), ["kind", "points", "source", "target"]);
    assert.ok(ids.includes(e.source) && ids.includes(e.target));
  }
  assert.ok(graph.edges.filter((e) => e.source === "parse").length >= 2, "a fan-out");
  const columns = ["kind", "backend", "workers", "status", "items_in", "items_out", "done", "filtered",
    "failed", "cancelled", "retried", "in_flight", "queue_depth", "queue_size", "busy", "throughput",
    "p50_ms", "p90_ms", "p95_ms", "p99_ms", "started", "finished", "elapsed_s", "oldest_s", "stalled",
    "peek", "active"];
  for (const st of Object.values(stats)) assert.deepEqual(Object.keys(st).sort(), columns.slice().sort());
  for (const k of ["run_id", "pipeline", "status", "elapsed_s", "bottleneck", "hint", "errors_total",
    "totals", "total", "left", "notice"]) assert.ok(k in run, k);
  assert.ok(ids.includes(run.bottleneck));
  const row = errors.find((r) => r.stage === HOSTILE);
  for (const k of ["message", "item_repr", "traceback"]) assert.ok(row[k].includes(HOSTILE), k);
  for (const r of errors) {
    assert.deepEqual(Object.keys(r).sort(),
      ["attempts", "exc_type", "id", "item_repr", "message", "stage", "time", "traceback", "worker"]);
  }
  assert.ok(Object.values(stats).some((st) => st.stalled));
});

test("the formatters agree with minigun_nb.observe.summary", () => {
  assert.deepEqual([0, 9999, 10000, 123456, 999999, 3400000].map(formatCount),
    ["0", "9999", "10.0k", "123k", "1.00M", "3.40M"]);
  assert.deepEqual([0, 2.5, 42.42, 1234.5, 45678].map(formatRate), ["0", "2.50", "42.4", "1234", "45.7k"]);
  assert.deepEqual([null, 0.0123, 2.345, 42.42, 1234.5].map(formatMs), ["-", "0.012", "2.35", "42.4", "1234"]);
  assert.deepEqual([4.2, 42.0, 125.0, 3723.0].map(formatDuration), ["4.20s", "42.0s", "2m05s", "1h02m03s"]);
  assert.deepEqual([0, 59.9, 83.4, 3723, null].map(formatElapsed), ["00:00", "00:59", "01:23", "1:02:03", "00:00"]);
  assert.equal(truncate("abcdef", 4), "abc\u2026");
  assert.equal(truncate("abc", 4), "abc");
  assert.equal(truncate(null, 4), "");
});

test("the run's counts are those of minigun_nb.display.text.pipeline_counts", () => {
  const { graph, stats } = loadFixture();
  assert.deepEqual(pipelineCounts(graph, stats), { done: 5448, failed: 57, rate: 65.3 });
  // Every stage has a downstream (a cycle): the non-producers count.
  const loop = { edges: [{ source: "a", target: "b" }, { source: "b", target: "a" }, { source: "p", target: "a" }] };
  const two = {
    p: { kind: "producer", items_out: 9, done: 0, failed: 0, throughput: 5 },
    a: { kind: "processor", done: 3, failed: 1, throughput: 1 },
    b: { kind: "processor", done: 2, failed: 0, throughput: 2 },
  };
  assert.deepEqual(pipelineCounts(loop, two), { done: 5, failed: 1, rate: 3 });
  // A lone producer counts what it emitted.
  assert.deepEqual(pipelineCounts({ edges: [] }, { p: two.p }), { done: 9, failed: 0, rate: 5 });
  assert.deepEqual(pipelineCounts(null, {}), { done: 0, failed: 0, rate: 0 });
});
