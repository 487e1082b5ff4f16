// Pemba playground: three editors, debounced calls to the JSON API under
// ./api/, and an SVG drawing of the Expand tree. No dependencies.
"use strict";

const starter = {
  schema: `definition user {}

definition group {
  relation member: user | group#member
}

definition document {
  relation owner: user
  relation viewer: user | group#member
  permission edit = owner
  permission view = viewer + edit
}`,
  relationships: `document:readme#owner@user:anne
document:readme#viewer@group:eng#member
group:eng#member@user:bob`,
  assertions: `assertions:
  assertTrue:
    - document:readme#view@user:anne
    - document:readme#view@user:bob
  assertFalse:
    - document:readme#edit@user:bob
validation:
  document:readme#view:
    - "[user:anne] is <document:readme#owner>"
    - "[user:bob] is <group:eng#member>"
`,
  check: "document:readme#view@user:bob",
};

const $ = (sel, root = document) => root.querySelector(sel);
const svgNS = "http://www.w3.org/2000/svg";

// An editor is a textarea with a line-number gutter and a layer of line
// marks behind the text, scrolled together.
class Editor {
  constructor(section) {
    this.name = section.dataset.pane;
    this.section = section;
    this.ta = $("textarea", section);
    this.gutter = $(".gutter", section);
    this.marks = $(".marks", section);
    this.list = $(".problems", section);
    this.lines = document.createElement("div");
    this.lines.className = "gutter-lines";
    this.gutter.appendChild(this.lines);
    this.state = new Map(); // line -> {cls, title}
    this.ta.addEventListener("scroll", () => this.scroll());
    this.ta.addEventListener("input", () => this.renderGutter());
    // Tab indents (two spaces, which YAML accepts) instead of leaving the
    // pane; insertText keeps the browser's undo history.
    this.ta.addEventListener("keydown", (e) => {
      if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey) {
        e.preventDefault();
        document.execCommand("insertText", false, "  ");
      }
    });
  }
  get value() { return this.ta.value; }
  set value(v) { this.ta.value = v; this.renderGutter(); }
  scroll() {
    this.gutter.scrollTop = this.ta.scrollTop;
    this.marks.style.transform = `translateY(${-this.ta.scrollTop}px)`;
  }
  // mark sets the line states: a Map from line to {cls, title}.
  mark(state) { this.state = state; this.renderGutter(); }
  renderGutter() {
    const n = this.ta.value.split("\n").length;
    const frag = document.createDocumentFragment();
    const marks = document.createDocumentFragment();
    const lh = parseFloat(getComputedStyle(this.ta).lineHeight) || 18;
    for (let i = 1; i <= n; i++) {
      const d = document.createElement("div");
      d.textContent = i;
      d.dataset.line = i;
      const st = this.state.get(i);
      if (st) {
        d.className = st.cls;
        d.title = st.title;
        const m = document.createElement("div");
        m.className = "mark " + st.cls;
        m.dataset.line = i;
        m.title = st.title;
        m.style.top = `${(i - 1) * lh}px`;
        marks.appendChild(m);
      }
      frag.appendChild(d);
    }
    this.lines.replaceChildren(frag);
    this.marks.replaceChildren(marks);
    this.scroll();
  }
  goto(line) {
    const lines = this.ta.value.split("\n");
    let pos = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
    this.ta.focus();
    this.ta.setSelectionRange(pos, pos + (lines[line - 1] || "").length);
    const lh = parseFloat(getComputedStyle(this.ta).lineHeight) || 18;
    this.ta.scrollTop = Math.max(0, (line - 3) * lh);
  }
  showProblems(problems) {
    const frag = document.createDocumentFragment();
    for (const p of problems) {
      const li = document.createElement("li");
      li.textContent = `${p.line}${p.column ? ":" + p.column : ""}: ${p.message}`;
      li.dataset.line = p.line;
      li.addEventListener("click", () => this.goto(p.line));
      frag.appendChild(li);
    }
    this.list.replaceChildren(frag);
  }
}

const editors = {};
for (const s of document.querySelectorAll(".pane")) editors[s.dataset.pane] = new Editor(s);
const status = $("#status");
const panes = () => ({ schema: editors.schema.value, relationships: editors.relationships.value, assertions: editors.assertions.value });

function setStatus(text, isError) {
  status.textContent = text;
  status.className = isError ? "error" : "";
}

// post sends body to the API; an earlier call of the same kind still in
// flight is aborted, so only the latest answer is drawn.
const inflight = {};
async function post(kind, body) {
  if (inflight[kind]) inflight[kind].abort();
  const ctl = new AbortController();
  inflight[kind] = ctl;
  const resp = await fetch(`api/${kind}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal: ctl.signal,
  });
  const data = await resp.json();
  if (!resp.ok) throw new Error(data.error || resp.statusText);
  return data;
}

function debounce(fn, ms) {
  let t;
  return () => { clearTimeout(t); t = setTimeout(fn, ms); };
}

// States of the lines of every pane from the latest run and check: errors
// from either, plus pass/fail of the assertions.
let runProblems = [], checkProblems = [], assertionLines = new Map();

function paint() {
  const all = [...runProblems];
  for (const p of checkProblems) {
    if (!all.some((q) => q.pane === p.pane && q.line === p.line && q.message === p.message)) all.push(p);
  }
  for (const [name, ed] of Object.entries(editors)) {
    const state = new Map();
    if (name === "assertions") for (const [l, st] of assertionLines) state.set(l, st);
    const mine = all.filter((p) => p.pane === name);
    for (const p of mine) {
      const prev = state.get(p.line);
      state.set(p.line, { cls: "err", title: (prev && prev.cls === "err" ? prev.title + "\n" : "") + p.message });
    }
    ed.mark(state);
    ed.showProblems(mine);
  }
}

async function run() {
  setStatus("running…");
  let res;
  try {
    res = await post("run", panes());
  } catch (e) {
    if (e.name === "AbortError") return;
    setStatus(e.message, true);
    return;
  }
  runProblems = res.problems;
  assertionLines = new Map();
  const list = $("#assertion-results");
  const frag = document.createDocumentFragment();
  let passed = 0;
  for (const a of res.assertions) {
    const li = document.createElement("li");
    li.className = a.pass ? "pass" : "fail";
    li.dataset.line = a.line;
    li.textContent = `${a.kind} ${a.text}`;
    if (!a.pass) {
      const d = document.createElement("span");
      d.className = "detail";
      d.textContent = a.message + (a.explain ? "\n" + a.explain : "");
      li.appendChild(d);
    }
    li.addEventListener("click", () => editors.assertions.goto(a.line));
    assertionLines.set(a.line, { cls: a.pass ? "pass" : "fail", title: a.pass ? "passes" : a.message });
    if (a.pass) passed++;
    frag.appendChild(li);
  }
  list.replaceChildren(frag);
  const vfrag = document.createDocumentFragment();
  let vpassed = 0;
  for (const v of res.validations) {
    const li = document.createElement("li");
    li.className = v.pass ? "pass" : "fail";
    li.dataset.line = v.line;
    li.textContent = `validation ${v.key}`;
    if (!v.pass) {
      const d = document.createElement("span");
      d.className = "detail";
      d.textContent = v.messages.join("\n");
      li.appendChild(d);
    }
    li.addEventListener("click", () => editors.assertions.goto(v.line));
    if (!assertionLines.has(v.line)) assertionLines.set(v.line, { cls: v.pass ? "pass" : "fail", title: v.pass ? "passes" : v.messages.join("\n") });
    if (v.pass) vpassed++;
    vfrag.appendChild(li);
  }
  $("#validation-results").replaceChildren(vfrag);
  const nA = res.assertions.length, nV = res.validations.length;
  $("#summary").textContent = res.problems.length ? `(${res.problems.length} problems)` :
    `${passed}/${nA} assertions, ${vpassed}/${nV} validations pass`;
  paint();
  setStatus(res.problems.length ? `${res.problems.length} problems` : "ok", res.problems.length > 0);
}

async function check() {
  const text = $("#check").value.trim();
  const answer = $("#answer");
  // data-check names the check the answer is for.
  answer.dataset.check = text;
  if (!text) { answer.className = ""; answer.textContent = ""; drawTree(null); return; }
  let res;
  answer.className = "pending";
  try {
    res = await post("check", { ...panes(), check: text, context: $("#context").value });
  } catch (e) {
    if (e.name === "AbortError") return;
    answer.className = "error";
    answer.textContent = e.message;
    drawTree(null);
    return;
  }
  checkProblems = res.problems;
  paint();
  if (res.error || !res.permissionship) {
    answer.className = "error";
    answer.textContent = res.error || "the schema has errors";
    drawTree(null);
    return;
  }
  const words = { HAS_PERMISSION: ["has", "yes: has permission"], NO_PERMISSION: ["no", "no permission"],
    CONDITIONAL_PERMISSION: ["conditional", "conditional: needs " + (res.missingContext || []).join(", ")] };
  const [cls, word] = words[res.permissionship] || ["error", res.permissionship];
  answer.className = cls;
  answer.dataset.permissionship = res.permissionship;
  answer.textContent = word;
  drawTree(res.tree);
}

// ---- The Expand tree, laid out left to right ----

const charW = 7.3, lineH = 16, padX = 8, padY = 6, gapX = 48, gapY = 12, maxSubjects = 6;
const symbols = { union: "∪", intersection: "∩", exclusion: "−", leaf: "" };

function nodeLines(n) {
  const lines = [];
  const name = `${n.object}#${n.relation}`;
  if (n.arrow) {
    lines.push({ cls: "title", text: `→ ${name}` + (n.kind === "intersection" ? " (all)" : "") });
    lines.push({ text: "via " + n.subjects.map((s) => s.subject).join(", ") });
  } else {
    lines.push({ cls: "title", text: (symbols[n.kind] ? symbols[n.kind] + " " : "") + name + (n.truncated ? " …" : "") });
    const subs = n.subjects || [];
    const shown = subs.filter((s) => s.match).concat(subs.filter((s) => !s.match)).slice(0, maxSubjects);
    for (const s of shown) lines.push({ cls: s.match ? "match" : "", text: "  " + s.subject + (s.conditions ? ` [${s.conditions}]` : "") });
    if (subs.length > shown.length) lines.push({ text: `  … ${subs.length - shown.length} more` });
  }
  if (n.conditions) lines.push({ cls: "cond", text: `when ${n.conditions}` });
  if (n.elided) lines.push({ text: `(${n.elided} children not drawn)` });
  return lines;
}

function layout(n, depth, y, cols) {
  n.lines = nodeLines(n);
  n.w = Math.max(...n.lines.map((l) => l.text.length)) * charW + 2 * padX;
  n.h = n.lines.length * lineH + 2 * padY;
  n.depth = depth;
  cols[depth] = Math.max(cols[depth] || 0, n.w);
  const kids = n.children || [];
  if (!kids.length) { n.y = y; return n.h + gapY; }
  let used = 0;
  for (const c of kids) used += layout(c, depth + 1, y + used, cols);
  const span = used - gapY;
  n.y = y + Math.max(0, (span - n.h) / 2);
  return Math.max(used, n.h + gapY);
}

function place(n, xs) {
  n.x = xs[n.depth];
  for (const c of n.children || []) place(c, xs);
}

function drawTree(tree) {
  const svg = $("#graph");
  svg.replaceChildren();
  if (!tree) { svg.setAttribute("width", 0); svg.setAttribute("height", 0); return; }
  const cols = [];
  const height = layout(tree, 0, gapY, cols) + gapY;
  const xs = [gapY];
  for (let i = 1; i <= cols.length; i++) xs[i] = xs[i - 1] + cols[i - 1] + gapX;
  place(tree, xs);
  svg.setAttribute("width", xs[cols.length] - gapX + gapY);
  svg.setAttribute("height", height);
  const edges = document.createElementNS(svgNS, "g");
  const nodes = document.createElementNS(svgNS, "g");
  svg.append(edges, nodes);
  const walk = (n) => {
    const g = document.createElementNS(svgNS, "g");
    g.setAttribute("class", "node" + (n.grants ? " grants" : ""));
    g.setAttribute("transform", `translate(${n.x},${n.y})`);
    g.dataset.name = `${n.object}#${n.relation}`;
    const r = document.createElementNS(svgNS, "rect");
    r.setAttribute("width", n.w);
    r.setAttribute("height", n.h);
    r.setAttribute("rx", 5);
    g.appendChild(r);
    n.lines.forEach((l, i) => {
      const t = document.createElementNS(svgNS, "text");
      t.setAttribute("x", padX);
      t.setAttribute("y", padY + (i + 1) * lineH - 4);
      if (l.cls) t.setAttribute("class", l.cls);
      t.textContent = l.text;
      g.appendChild(t);
    });
    const title = document.createElementNS(svgNS, "title");
    title.textContent = `${n.kind}${n.arrow ? " (arrow)" : ""} ${n.object}#${n.relation}`;
    g.appendChild(title);
    nodes.appendChild(g);
    for (const c of n.children || []) {
      const p = document.createElementNS(svgNS, "path");
      const x1 = n.x + n.w, y1 = n.y + n.h / 2, x2 = c.x, y2 = c.y + c.h / 2, mx = (x1 + x2) / 2;
      p.setAttribute("d", `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`);
      p.setAttribute("class", "edge" + (n.grants && c.grants ? " grants" : ""));
      edges.appendChild(p);
      walk(c);
    }
  };
  walk(tree);
  // Bring the end of the highlighted path into view.
  let deepest = null;
  const find = (n) => { if (n.grants && (!deepest || n.depth > deepest.depth)) deepest = n; (n.children || []).forEach(find); };
  find(tree);
  if (deepest) {
    const wrap = $("#graph-wrap");
    wrap.scrollTop = Math.max(0, deepest.y + deepest.h / 2 - wrap.clientHeight / 2);
    wrap.scrollLeft = Math.max(0, deepest.x + deepest.w - wrap.clientWidth + gapX);
  }
}

// ---- Wiring ----

const runSoon = debounce(run, 300);
const checkSoon = debounce(check, 300);
for (const ed of Object.values(editors)) {
  ed.ta.addEventListener("input", () => { runSoon(); checkSoon(); });
}
$("#check").addEventListener("input", checkSoon);
$("#context").addEventListener("input", checkSoon);
$("#check-form").addEventListener("submit", (e) => { e.preventDefault(); check(); });

$("#load-example").addEventListener("click", async () => {
  setStatus("loading the example…");
  try {
    const resp = await fetch("api/example");
    const p = await resp.json();
    if (!resp.ok) throw new Error(p.error || resp.statusText);
    editors.schema.value = p.schema;
    editors.relationships.value = p.relationships;
    editors.assertions.value = p.assertions;
    $("#check").value = "crm_customer:c42#view@employee:zhang";
    $("#context").value = "";
    run();
    check();
  } catch (e) {
    setStatus(e.message, true);
  }
});

$("#download").addEventListener("click", async () => {
  const resp = await fetch("api/download", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(panes()),
  });
  if (!resp.ok) { setStatus("download failed: " + resp.statusText, true); return; }
  const url = URL.createObjectURL(await resp.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = "playground.yaml";
  document.body.appendChild(a);
  a.click();
  a.remove();
  URL.revokeObjectURL(url);
});

editors.schema.value = starter.schema;
editors.relationships.value = starter.relationships;
editors.assertions.value = starter.assertions;
$("#check").value = starter.check;
run();
check();
