// Shared set-up for the dashboard tests (node --test runs this file too: it has no tests).
import { readFileSync } from "node:fs";
import { Window } from "happy-dom";

export const HOSTILE = "<img src=x onerror=alert(1)>";
export const FIXTURE_URL = new URL("../../tests/fixtures/dashboard_state.json", import.meta.url);

/** A fresh copy of the shared fixture ({graph, stats, run, errors}). */
export function loadFixture() {
  return JSON.parse(readFileSync(FIXTURE_URL, "utf8"));
}

/** A happy-dom window with an empty <div> in its body. */
export function makeDom() {
  const window = new Window({ url: "http://127.0.0.1/" });
  const document = window.document;
  const el = document.createElement("div");
  document.body.appendChild(el);
  return { window, document, el, close: () => window.happyDOM.close() };
}

/** A stand-in for anywidget's model: get/set/on/off/send, recording what is sent. */
export function fakeModel(state) {
  const values = structuredClone(state);
  const listeners = new Map(); // event name -> [callback]
  const sent = [];
  return {
    sent,
    get: (name) => values[name],
    /** Set a trait and fire its change event, as a comm message from the kernel does. */
    set(name, value) {
      values[name] = value;
      for (const cb of [...(listeners.get(`change:${name}`) || [])]) cb();
    },
    on(event, cb) {
      if (!listeners.has(event)) listeners.set(event, []);
      listeners.get(event).push(cb);
    },
    off(event, cb) {
      const list = listeners.get(event) || [];
      const i = list.indexOf(cb);
      if (i >= 0) list.splice(i, 1);
    },
    send: (msg) => sent.push(msg),
    listenerCount: () => [...listeners.values()].reduce((n, list) => n + list.length, 0),
  };
}

/** The node <g> of stage `path` (compared by attribute: paths may hold any character). */
export function nodeOf(root, path) {
  return [...root.querySelectorAll(".mg-node")].find((g) => g.getAttribute("data-stage") === path);
}

/** A fake setTimeout/clearTimeout pair whose callbacks run only when `fire()` is called. */
export function fakeTimers() {
  const pending = new Map();
  let next = 1;
  return {
    setTimeout: (fn, ms) => {
      pending.set(next, { fn, ms });
      return next++;
    },
    clearTimeout: (id) => pending.delete(id),
    pending,
    fire() {
      const due = [...pending.values()];
      pending.clear();
      for (const { fn } of due) fn();
    },
  };
}
