/* sipflow HTML report: draws the dashboard, the call table and ladders from the JSON in #data.
   Every string from the capture is written with textContent (never as markup): SIP headers,
   display names, Call-IDs and reason phrases are attacker-controlled. */
(function () {
  "use strict";

  var D = JSON.parse(document.getElementById("data").textContent);
  var SVG = "http://www.w3.org/2000/svg";
  var PAGE = 200;
  var NOTES_W = 320;
  var F = {frame: 0, t: 1, src: 2, dst: 3, label: 4, cseq: 5, retrans: 6, sdp: 7, raw: 8};
  var GOOD = {answered: 1, registered: 1, unregistered: 1};
  var MIDDLE = {cancelled: 1, in_progress: 1, busy: 1, no_answer: 1};

  // ---------------------------------------------------------------- small DOM helpers
  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    var k;
    for (k in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, k)) { e.setAttribute(k, String(attrs[k])); }
    }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  // Explanations and hints repeat across calls: the data holds each once, in D.texts.
  function text(i) { return D.texts[i]; }

  function fmt(v, digits) {
    if (v === null || v === undefined) { return "—"; }
    return Number(v).toLocaleString("en-US", {maximumFractionDigits: digits === undefined ? 2 : digits});
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) { return "—"; }
    return ms < 1000 ? fmt(ms, 1) + " ms" : fmt(ms / 1000, 3) + " s";
  }

  function fmtSpan(s) {
    if (s < 60) { return fmt(s, 3) + " s"; }
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
    return (h ? h + " h " : "") + m + " min " + sec + " s";
  }

  function outcomeClass(o) {
    if (GOOD[o]) { return "tag ok"; }
    if (MIDDLE[o]) { return "tag mid"; }
    return "tag bad";
  }

  function epoch() {
    var first = D.capture.first;
    return first ? Date.parse(first.slice(0, 23) + "Z") : 0;
  }

  function clock(ms) {
    return new Date(epoch() + ms).toISOString().slice(11, 19);
  }

  // ---------------------------------------------------------------- dashboard
  function card(parent, key, value, detail, title, cls) {
    var c = el("div", "card" + (cls ? " " + cls : ""));
    c.appendChild(el("div", "k", key));
    var v = el("div", "v", value);
    c.appendChild(v);
    if (detail) { c.appendChild(el("div", "d", detail)); }
    if (title) { c.title = title; }
    parent.appendChild(c);
    return v;
  }

  function summary() {
    var cap = D.capture, s = D.summary, box = $("summary");
    $("capture-path").textContent = cap.path;
    var name = cap.path.split(/[\\/]/).pop();
    card(box, "Capture", name, cap.warning || (cap.malformed ? cap.malformed + " malformed SIP" : ""), cap.path, "wide");
    card(box, "Span", fmtSpan(cap.span_s || 0),
      cap.first ? cap.first.slice(0, 19).replace("T", " ") + " – " + cap.last.slice(11, 19) + " UTC" : "",
      cap.first ? cap.first + " – " + cap.last : "", "wide");
    card(box, "Packets", fmt(cap.packets, 0));
    card(box, "SIP messages", fmt(cap.sip_messages, 0));
    card(box, "Conversations", fmt(s.conversations, 0), kindLine(s.by_kind));
    card(box, "Failed", fmt(s.failed, 0), s.conversations ? fmt(100 * s.failed / s.conversations, 1) + " % of all" : "");
  }

  function kindLine(byKind) {
    return Object.keys(byKind).map(function (k) { return byKind[k] + " " + k; }).join(", ");
  }

  // Security findings about the whole capture (scanners, password guessing, floods, toll
  // fraud, spoofed responses); the panel stays hidden when there are none.
  var SEVERITY_TAG = {high: "bad", medium: "mid", low: ""};

  function security() {
    var found = D.security || [];
    if (!found.length) { return; }
    $("security-panel").hidden = false;
    var table = $("security"), head = el("tr");
    ["Severity", "Rule", "Source", "Count", "What", "Frames"].forEach(function (t) { head.appendChild(el("th", "", t)); });
    table.appendChild(head);
    found.forEach(function (f) {
      var tr = el("tr"), sev = el("td"), what = el("td", "what");
      sev.appendChild(el("span", "tag " + (SEVERITY_TAG[f.severity] || ""), f.severity));
      tr.appendChild(sev);
      tr.appendChild(el("td", "mono", f.rule));
      tr.appendChild(el("td", "mono", f.src));
      tr.appendChild(el("td", "num", String(f.count)));
      what.appendChild(el("div", "", f.summary));
      what.appendChild(el("div", "hint", f.hint));
      what.title = f.first === f.last ? f.first : f.first + " – " + f.last;
      tr.appendChild(what);
      tr.appendChild(el("td", "mono", f.frames.join(" ")));
      tr.dataset.rule = f.rule;
      table.appendChild(tr);
    });
  }

  var KPIS = [
    ["ASR", "asr", "%", "Answer-seizure ratio: answered / attempts (ITU-T E.411)", 1],
    ["NER", "ner", "%", "Network effectiveness: answered, busy, no answer and callee rejections / attempts (E.411)", 1],
    ["SER", "ser", "%", "Session establishment ratio: answered / (attempts − redirected) (RFC 6076 §4.6)", 1],
    ["SEER", "seer", "%", "Session establishment effectiveness (RFC 6076 §4.7)", 1],
    ["ISA", "isa", "%", "Ineffective session attempts: 408/500/503/504 or no final (RFC 6076 §4.8)", -1],
    ["SCR", "scr", "%", "Session completion ratio: answered and ended by BYE (RFC 6076 §4.9)", 1],
    ["ACD", "acd_s", "s", "Average call duration of answered calls", 0],
    ["PDD median", "pdd_median_ms", "ms", "Post-dial delay / SRD median (RFC 6076 §4.2)", 0],
    ["PDD p95", "pdd_p95_ms", "ms", "Post-dial delay, 95th percentile", 0],
    ["SDD median", "sdd_median_ms", "ms", "Session disconnect delay median (RFC 6076 §4.5)", 0],
    ["RRD median", "rrd_median_ms", "ms", "Registration request delay median (RFC 6076 §4.1)", 0],
    ["IRA", "ira", "%", "Ineffective registration attempts (RFC 6076 §4.4)", -1]
  ];

  function kpis() {
    var k = D.kpi, box = $("kpis");
    KPIS.forEach(function (spec) {
      var v = k[spec[1]];
      var text = v === null ? "—" : (spec[2] === "ms" ? fmtMs(v) : fmt(v, spec[2] === "s" ? 1 : 2) + " " + spec[2]);
      var detail = spec[1] === "ira" || spec[1] === "rrd_median_ms"
        ? k.registrations + " registrations" : k.attempts + " call attempts";
      var node = card(box, spec[0], text, detail, spec[3]);
      node.dataset.kpi = spec[1];
      if (v !== null && spec[2] === "%" && spec[4]) {
        var good = spec[4] > 0 ? v >= 80 : v <= 5;
        var poor = spec[4] > 0 ? v < 50 : v > 20;
        if (good) { node.classList.add("good"); } else if (poor) { node.classList.add("poor"); }
      }
    });
  }

  function barRows(table, rows, onClick) {
    var max = rows.reduce(function (m, r) { return Math.max(m, r.n); }, 0) || 1;
    if (!rows.length) {
      var tr0 = table.insertRow();
      var td0 = tr0.insertCell();
      td0.className = "empty";
      td0.textContent = "none";
      return;
    }
    rows.forEach(function (r) {
      var tr = table.insertRow();
      var name = tr.insertCell();
      name.className = "name";
      name.textContent = r.name;
      name.title = r.name;
      var bar = tr.insertCell();
      bar.className = "bar";
      var fill = el("div", "fill" + (r.bad ? " bad" : ""));
      fill.style.width = (100 * r.n / max).toFixed(1) + "%";
      bar.appendChild(fill);
      var n = tr.insertCell();
      n.className = "n";
      n.textContent = fmt(r.n, 0);
      if (onClick) {
        tr.className = "clickable";
        tr.title = "Show these in the table";
        tr.addEventListener("click", function () { onClick(r); });
      }
    });
  }

  function outcomes() {
    var o = D.summary.outcomes;
    var rows = Object.keys(o).map(function (key) {
      var parts = key.split(":");
      return {name: parts[0] + " · " + parts[1].replace(/_/g, " "), n: o[key], kind: parts[0], outcome: parts[1],
        bad: !GOOD[parts[1]] && !MIDDLE[parts[1]]};
    }).sort(function (a, b) { return b.n - a.n; });
    barRows($("outcomes"), rows, function (r) {
      $("f-kind").value = r.kind;
      $("f-outcome").value = r.outcome;
      $("f-text").value = "";
      applyFilters(true);
    });
  }

  function codes() {
    var counts = {}, reasons = {};
    D.calls.forEach(function (c) {
      if (!c.final) { return; }
      var code = c.final.code;
      counts[code] = (counts[code] || 0) + 1;
      if (!reasons[code]) { reasons[code] = c.final.reason; }
    });
    var rows = Object.keys(counts).map(function (code) {
      return {name: code + " " + reasons[code], n: counts[code], code: code, bad: Number(code) >= 300};
    }).sort(function (a, b) { return Number(a.code) - Number(b.code); });
    barRows($("codes"), rows, function (r) {
      $("f-kind").value = "";
      $("f-outcome").value = "";
      $("f-text").value = r.code;
      applyFilters(true);
    });
  }

  // ---------------------------------------------------------------- charts (inline SVG)
  var NICE_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900,
    1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

  function niceStep(span, maxBins) {
    for (var i = 0; i < NICE_S.length; i++) {
      if (span / NICE_S[i] <= maxBins) { return NICE_S[i]; }
    }
    return Math.ceil(span / maxBins);
  }

  function niceMax(v) {
    if (v <= 5) { return Math.max(1, Math.ceil(v)); }
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (v <= steps[i] * p) { return steps[i] * p; }
    }
    return 10 * p;
  }

  function frame(box, W, H) {
    var s = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img"});
    box.replaceChildren(s);
    return s;
  }

  function yAxis(s, x0, x1, y0, y1, max, right, suffix) {
    [0, 0.5, 1].forEach(function (f) {
      var y = y0 - f * (y0 - y1);
      s.appendChild(svg("line", {x1: x0, x2: x1, y1: y, y2: y, "class": "axis"}));
      var label = fmt(f * max, max < 10 ? 1 : 0) + (suffix || "");
      s.appendChild(svg("text", right ? {x: x1 + 4, y: y + 4} : {x: x0 - 4, y: y + 4, "text-anchor": "end"}, label));
    });
  }

  function timeChart() {
    var box = $("chart-time");
    var calls = D.calls.filter(function (c) { return c.kind === "call"; });
    var noun = "calls";
    if (!calls.length) { calls = D.calls; noun = "conversations"; }
    if (!calls.length) { box.replaceChildren(el("div", "empty", "No conversations in this capture.")); return; }
    var end = calls.reduce(function (m, c) { return Math.max(m, c.t_ms); }, 0) / 1000;
    var step = niceStep(Math.max(end, 0.001), 48);
    var n = Math.floor(end / step) + 1;
    var ok = new Array(n).fill(0), bad = new Array(n).fill(0);
    calls.forEach(function (c) {
      var b = Math.min(n - 1, Math.floor(c.t_ms / 1000 / step));
      if (c.breaking) { bad[b]++; } else { ok[b]++; }
    });
    var W = 640, H = 230, L = 40, R = 44, T = 12, B = 34;
    var s = frame(box, W, H);
    var max = niceMax(Math.max.apply(null, ok.map(function (v, i) { return v + bad[i]; })));
    var bw = (W - L - R) / n, y0 = H - B;
    yAxis(s, L, W - R, y0, T, max, false);
    [0, 50, 100].forEach(function (p) {
      s.appendChild(svg("text", {x: W - R + 4, y: y0 - p / 100 * (y0 - T) + 4}, p + " %"));
    });
    var pts = [];
    for (var i = 0; i < n; i++) {
      var x = L + i * bw, total = ok[i] + bad[i];
      var hOk = ok[i] / max * (y0 - T), hBad = bad[i] / max * (y0 - T);
      var gap = Math.min(2, bw * 0.15);
      var g = svg("g", {"class": "bucket"});
      g.appendChild(svg("title", {}, clock(i * step * 1000) + " UTC: " + total + " " + noun + ", " + bad[i] + " failed"));
      if (ok[i]) { g.appendChild(svg("rect", {x: x + gap, y: y0 - hOk, width: bw - 2 * gap, height: hOk, "class": "bar-ok"})); }
      if (bad[i]) {
        g.appendChild(svg("rect", {x: x + gap, y: y0 - hOk - hBad, width: bw - 2 * gap, height: hBad, "class": "bar-bad"}));
      }
      s.appendChild(g);
      pts.push(total ? [x + bw / 2, y0 - bad[i] / total * (y0 - T)] : null);
    }
    // The rate is drawn only between neighbouring buckets that had calls: an empty bucket has no rate.
    var run = [];
    pts.concat([null]).forEach(function (p) {
      if (p) { run.push(p[0].toFixed(1) + "," + p[1].toFixed(1)); return; }
      if (run.length > 1) { s.appendChild(svg("polyline", {points: run.join(" "), "class": "rate"})); }
      run = [];
    });
    pts.forEach(function (p) { if (p) { s.appendChild(svg("circle", {cx: p[0], cy: p[1], r: 2.2, "class": "rate-dot"})); } });
    var every = Math.ceil(n / 6);
    for (var bi = 0; bi < n; bi += every) {
      s.appendChild(svg("text", {x: L + bi * bw + bw / 2, y: H - B + 16, "text-anchor": "middle"},
        step < 1 ? "+" + fmt(bi * step, 3) + " s" : clock(bi * step * 1000)));
    }
    s.appendChild(svg("text", {x: L, y: H - 4}, "bucket " + fmtSpan(step) + (step >= 1 ? ", UTC" : " from capture start")));
    var legend = el("div", "legend");
    [["l-ok", noun + " that worked"], ["l-bad", "failed"], ["l-rate", "failure rate (right axis)"]].forEach(function (l) {
      var span = el("span");
      span.appendChild(el("i", l[0]));
      span.appendChild(document.createTextNode(l[1]));
      legend.appendChild(span);
    });
    box.appendChild(legend);
  }

  function pddChart() {
    var box = $("chart-pdd");
    var values = D.calls.filter(function (c) { return c.kind === "call" && c.pdd_ms !== null; })
      .map(function (c) { return c.pdd_ms; }).sort(function (a, b) { return a - b; });
    if (!values.length) { box.replaceChildren(el("div", "empty", "No call with a post-dial delay.")); return; }
    // Bins up to the 99th percentile; the slow tail goes in the last bin, so one outlier does not flatten the rest.
    var top = values[Math.min(values.length - 1, Math.floor(values.length * 0.99))];
    var width = niceStep(Math.max(top, 1) / 1000, 24) * 1000;
    var n = Math.floor(top / width) + 1;
    var bins = new Array(n).fill(0);
    values.forEach(function (v) { bins[Math.min(n - 1, Math.floor(v / width))]++; });
    var W = 640, H = 230, L = 40, R = 16, T = 12, B = 34;
    var s = frame(box, W, H);
    var max = niceMax(Math.max.apply(null, bins));
    var bw = (W - L - R) / n, y0 = H - B;
    yAxis(s, L, W - R, y0, T, max, false);
    bins.forEach(function (count, i) {
      var h = count / max * (y0 - T);
      var last = i === n - 1 && values[values.length - 1] >= (i + 1) * width;
      var g = svg("g", {"class": "bin"});
      g.appendChild(svg("title", {}, fmtMs(i * width) + (last ? " and over" : " – " + fmtMs((i + 1) * width)) + ": " + count + " calls"));
      if (count) {
        g.appendChild(svg("rect", {x: L + i * bw + 1, y: y0 - h, width: Math.max(1, bw - 2), height: h, "class": "bar-pdd"}));
      }
      s.appendChild(g);
    });
    var every = Math.ceil(n / 6);
    for (var bi = 0; bi <= n; bi += every) {
      s.appendChild(svg("text", {x: L + bi * bw, y: H - B + 16, "text-anchor": "middle"}, fmtMs(bi * width)));
    }
    s.appendChild(svg("text", {x: L, y: H - 4}, values.length + " calls, first INVITE to first 18x (or the final answer)"));
  }

  // ---------------------------------------------------------------- call table
  var COLUMNS = [
    {title: "#", num: true, key: function (c, i) { return i; }, text: function (c, i) { return i + 1; }},
    {title: "Start (UTC)", key: function (c) { return c.t_ms; }, text: function (c) { return c.start.slice(11, 23); },
      tip: function (c) { return c.start; }, cls: "mono"},
    {title: "Kind", key: function (c) { return c.kind; }},
    {title: "Outcome", key: function (c) { return c.outcome; }, tag: true},
    {title: "Caller", key: function (c) { return c.caller; }},
    {title: "Callee", key: function (c) { return c.callee; }},
    {title: "Final", key: function (c) { return c.final ? c.final.code : null; },
      text: function (c) { return c.final ? c.final.code + " " + c.final.reason : "—"; }},
    {title: "Broken by", key: function (c) { return c.breaking ? c.breaking.rule : null; },
      text: function (c) { return c.breaking ? c.breaking.rule + " (frame " + c.breaking.frame + ")" : ""; }},
    {title: "PDD", num: true, key: function (c) { return c.pdd_ms; }, text: function (c) { return fmtMs(c.pdd_ms); }},
    {title: "Duration", num: true, key: function (c) { return c.duration_s; },
      text: function (c) { return c.duration_s === null ? "—" : fmt(c.duration_s, 1) + " s"; }},
    {title: "Msgs", num: true, key: function (c) { return c.messages; }},
    {title: "Call-ID", key: function (c) { return c.call_id; }, cls: "mono"}
  ];

  var state = {rows: [], sort: 0, dir: 1, page: 0, open: -1, hay: null};

  function haystack(i) {
    if (!state.hay) {
      state.hay = D.calls.map(function (c) {
        return [c.call_id, c.caller, c.callee, c.final ? c.final.code : "", c.breaking && c.breaking.code ? c.breaking.code : ""]
          .join("\n").toLowerCase();
      });
    }
    return state.hay[i];
  }

  function tableSetup() {
    var head = $("calls-head");
    COLUMNS.forEach(function (col, k) {
      var th = el("th", col.num ? "num" : "", col.title);
      th.scope = "col";
      th.addEventListener("click", function () {
        if (state.sort === k) { state.dir = -state.dir; } else { state.sort = k; state.dir = 1; }
        sortRows();
        state.page = 0;
        renderTable();
      });
      head.appendChild(th);
    });
    fillSelect($("f-outcome"), D.calls.map(function (c) { return c.outcome; }));
    fillSelect($("f-kind"), D.calls.map(function (c) { return c.kind; }));
    var timer = null;
    $("f-text").addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { applyFilters(false); }, 120);
    });
    $("f-outcome").addEventListener("change", function () { applyFilters(false); });
    $("f-kind").addEventListener("change", function () { applyFilters(false); });
    $("filters").addEventListener("submit", function (e) { e.preventDefault(); });
    $("p-first").addEventListener("click", function () { goPage(0); });
    $("p-prev").addEventListener("click", function () { goPage(state.page - 1); });
    $("p-next").addEventListener("click", function () { goPage(state.page + 1); });
    $("p-last").addEventListener("click", function () { goPage(Infinity); });
    $("calls-body").addEventListener("click", function (e) {
      var tr = e.target.closest("tr");
      if (tr && tr.dataset.index !== undefined) { openCall(Number(tr.dataset.index), true); }
    });
  }

  function fillSelect(select, values) {
    var seen = {};
    values.forEach(function (v) { seen[v] = (seen[v] || 0) + 1; });
    Object.keys(seen).sort().forEach(function (v) {
      var o = el("option", "", v.replace(/_/g, " ") + " (" + seen[v] + ")");
      o.value = v;
      select.appendChild(o);
    });
  }

  function applyFilters(scroll) {
    var outcome = $("f-outcome").value, kind = $("f-kind").value, text = $("f-text").value.trim().toLowerCase();
    var rows = [];
    for (var i = 0; i < D.calls.length; i++) {
      var c = D.calls[i];
      if (outcome && c.outcome !== outcome) { continue; }
      if (kind && c.kind !== kind) { continue; }
      if (text && haystack(i).indexOf(text) < 0) { continue; }
      rows.push(i);
    }
    state.rows = rows;
    sortRows();
    state.page = 0;
    renderTable();
    if (scroll) { $("calls-panel").scrollIntoView({block: "start"}); }
  }

  function compare(a, b) {
    if (a === b) { return 0; }
    if (a === null || a === undefined || a === "") { return 1; }
    if (b === null || b === undefined || b === "") { return -1; }
    if (typeof a === "number" && typeof b === "number") { return a - b; }
    return String(a) < String(b) ? -1 : 1;
  }

  function sortRows() {
    var col = COLUMNS[state.sort], dir = state.dir;
    var keys = new Array(D.calls.length);
    state.rows.forEach(function (i) { keys[i] = col.key(D.calls[i], i); });
    state.rows.sort(function (a, b) {
      var ka = keys[a], kb = keys[b];
      var empty = (ka === null || ka === "") - (kb === null || kb === "");
      if (empty) { return empty; }  // empty cells last whichever the direction
      return dir * compare(ka, kb) || a - b;
    });
    Array.prototype.forEach.call($("calls-head").children, function (th, k) {
      if (k === state.sort) { th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending"); } else { th.removeAttribute("aria-sort"); }
    });
  }

  function pages() { return Math.max(1, Math.ceil(state.rows.length / PAGE)); }

  function goPage(p) {
    state.page = Math.max(0, Math.min(pages() - 1, p));
    renderTable();
  }

  function renderTable() {
    var body = $("calls-body");
    var start = state.page * PAGE, end = Math.min(state.rows.length, start + PAGE);
    var frag = document.createDocumentFragment();
    for (var r = start; r < end; r++) {
      var i = state.rows[r], c = D.calls[i];
      var tr = el("tr");
      tr.dataset.index = String(i);
      if (i === state.open) { tr.className = "open"; }
      COLUMNS.forEach(function (col) {
        var td = el("td", (col.num ? "num " : "") + (col.cls || ""));
        var value = col.text ? col.text(c, i) : col.key(c, i);
        if (col.tag) {
          td.appendChild(el("span", outcomeClass(c.outcome), String(value).replace(/_/g, " ")));
        } else {
          td.textContent = value === null || value === undefined ? "—" : String(value);
        }
        td.title = col.tip ? col.tip(c) : td.textContent;
        tr.appendChild(td);
      });
      frag.appendChild(tr);
    }
    body.replaceChildren(frag);
    $("f-count").textContent = fmt(state.rows.length, 0) + " of " + fmt(D.calls.length, 0) + " conversations";
    $("p-info").textContent = state.rows.length
      ? "rows " + fmt(start + 1, 0) + "–" + fmt(end, 0) + " of " + fmt(state.rows.length, 0) + " · page " + (state.page + 1) + "/" + pages()
      : "no rows";
    $("p-first").disabled = $("p-prev").disabled = state.page === 0;
    $("p-next").disabled = $("p-last").disabled = state.page >= pages() - 1;
  }

  // ---------------------------------------------------------------- call detail and ladder
  function fact(box, name, value) {
    if (value === null || value === undefined || value === "") { return; }
    var d = el("div");
    d.appendChild(el("b", "", name));
    d.appendChild(document.createTextNode(String(value)));
    d.title = name + " " + value;
    box.appendChild(d);
  }

  function verdictBox(box, c) {
    box.replaceChildren();
    var b = c.breaking;
    if (b) {
      var v = el("div", "verdict");
      var head = el("p");
      head.appendChild(el("span", "rule", b.rule));
      head.appendChild(document.createTextNode(" — " + (b.code ? b.code + " " + b.reason : b.method) + " in frame " + b.frame +
        " (" + b.src + " → " + b.dst + "; hop: " + b.hop + ")"));
      v.appendChild(head);
      v.appendChild(el("p", "", text(b.explanation)));
      if (text(b.hint)) { v.appendChild(el("p", "hint", "Hint: " + text(b.hint))); }
      box.appendChild(v);
    }
    c.findings.forEach(function (f) {
      if (b && f.frame === b.frame && f.rule === b.rule) { return; }
      var w = el("div", "verdict finding");
      var p = el("p");
      p.appendChild(el("span", "rule", f.rule + " (" + f.severity + ")"));
      if (f.frame) { p.appendChild(document.createTextNode(" — frame " + f.frame)); }
      w.appendChild(p);
      w.appendChild(el("p", "", text(f.explanation)));
      if (text(f.hint)) { w.appendChild(el("p", "hint", "Hint: " + text(f.hint))); }
      box.appendChild(w);
    });
  }

  function openCall(i, pushHash) {
    var c = D.calls[i];
    if (!c) { return; }
    state.open = i;
    $("drawer").hidden = false;
    $("d-title").textContent = c.kind + " " + c.call_id;
    $("d-title").title = c.call_id;
    var facts = $("d-facts");
    facts.replaceChildren();
    var outcome = el("div");
    outcome.appendChild(el("b", "", "outcome"));
    outcome.appendChild(el("span", outcomeClass(c.outcome), c.outcome.replace(/_/g, " ")));
    facts.appendChild(outcome);
    fact(facts, "caller", c.caller + (c.caller_addr ? " (" + c.caller_addr + ")" : ""));
    fact(facts, "callee", c.callee + (c.callee_addr ? " (" + c.callee_addr + ")" : ""));
    fact(facts, "start", c.start.replace("T", " "));
    fact(facts, "final", c.final ? c.final.code + " " + c.final.reason : "none");
    fact(facts, "state", c.state);
    fact(facts, "PDD", c.pdd_ms === null ? null : fmtMs(c.pdd_ms));
    fact(facts, "setup", c.setup_ms === null ? null : fmtMs(c.setup_ms));
    fact(facts, "rang", c.answer_ms === null ? null : fmtMs(c.answer_ms));
    fact(facts, "duration", c.duration_s === null ? null : fmt(c.duration_s, 3) + " s");
    fact(facts, "hung up by", c.hung_up_by);
    fact(facts, "registration delay", c.rrd_ms === null ? null : fmtMs(c.rrd_ms));
    fact(facts, "messages", c.messages + (c.retransmissions ? " (" + c.retransmissions + " retransmissions)" : ""));
    verdictBox($("d-verdict"), c);
    ladder(c);
    var pick = c.breaking_index >= 0 ? c.breaking_index : 0;
    // No messages (live mode keeps none): no message pane, and nothing left from the last call.
    $("raw-title").hidden = $("raw").hidden = !c.msg_count;
    if (c.msg_count) { showRaw(c, pick); }
    Array.prototype.forEach.call($("calls-body").children, function (tr) {
      tr.classList.toggle("open", Number(tr.dataset.index) === i);
    });
    if (pushHash && location.hash !== "#call=" + i) { location.hash = "call=" + i; }
  }

  function closeCall() {
    $("drawer").hidden = true;
    state.open = -1;
    Array.prototype.forEach.call($("calls-body").children, function (tr) { tr.classList.remove("open"); });
    if (location.hash) {
      try { history.replaceState(null, "", location.pathname + location.search); } catch (e) { location.hash = ""; }
    }
  }

  function marker(defs, id, cls) {
    var m = svg("marker", {id: id, viewBox: "0 0 10 8", refX: 10, refY: 4, markerWidth: 10, markerHeight: 8,
      markerUnits: "userSpaceOnUse", orient: "auto"});
    m.appendChild(svg("path", {d: "M0,0 L10,4 L0,8 z", "class": cls}));
    defs.appendChild(m);
  }

  function ladder(c) {
    var wrap = $("d-ladder");
    var first = c.msg_first, count = c.msg_count;
    var cols = [], colOf = {};
    var maxLabel = 0, k, m;
    for (k = 0; k < count; k++) {
      m = D.messages[first + k];
      [m[F.src], m[F.dst]].forEach(function (ep) {
        if (colOf[ep] === undefined) { colOf[ep] = cols.length; cols.push(ep); }
      });
      maxLabel = Math.max(maxLabel, m[F.label].length + m[F.cseq].length + 12);
    }
    cols.forEach(function (ep) { maxLabel = Math.max(maxLabel, D.endpoints[ep].length); });
    // Columns as wide as the longest label wants, but narrow enough that the notes column
    // still fits beside the ladder in the drawer; longer labels are cut (full text on hover).
    var left = 104, head = 40, rowH = 30, ncols = Math.max(cols.length, 1);
    var room = Math.floor((wrap.clientWidth - NOTES_W - left - 4) / ncols);
    var colW = Math.max(150, Math.min(340, maxLabel * 7 + 30, room));
    var W = left + colW * Math.max(cols.length, 1), H = head + rowH * count + 14;
    var s = svg("svg", {"class": "ladder", width: W, height: H, viewBox: "0 0 " + W + " " + H});
    var defs = svg("defs", {});
    marker(defs, "mk-req", "mk-req");
    marker(defs, "mk-resp", "mk-resp");
    marker(defs, "mk-re", "mk-re");
    marker(defs, "mk-bad", "mk-bad");
    marker(defs, "mk-warn", "mk-warn");
    s.appendChild(defs);
    function x(ep) { return left + colW * colOf[ep] + colW / 2; }
    cols.forEach(function (ep) {
      var cx = x(ep), name = D.endpoints[ep];
      s.appendChild(svg("rect", {x: cx - colW / 2 + 8, y: 4, width: colW - 16, height: 24, rx: 4, "class": "ep-box"}));
      s.appendChild(svg("text", {x: cx, y: 20, "text-anchor": "middle", "class": "ep"}, name));
      s.appendChild(svg("line", {x1: cx, x2: cx, y1: 28, y2: H - 4, "class": "life"}));
    });
    var notes = el("div", "ladder-notes");
    notes.style.height = H + "px";
    var findings = {};
    c.finding_indexes.forEach(function (idx, n) { if (idx >= 0) { findings[idx] = c.findings[n]; } });
    for (k = 0; k < count; k++) {
      m = D.messages[first + k];
      var y = head + rowH * k + 20;
      var x1 = x(m[F.src]), x2 = x(m[F.dst]);
      var response = /^[0-9]/.test(m[F.label]);
      var cls = "msg " + (response ? "response" : "request");
      var mk = response ? "mk-resp" : "mk-req";
      if (m[F.retrans]) { cls += " retrans"; mk = "mk-re"; }
      if (findings[k] && k !== c.breaking_index) { cls += " finding"; mk = "mk-warn"; }
      if (k === c.breaking_index) { cls += " breaking"; mk = "mk-bad"; }
      var g = svg("g", {"class": cls, "data-frame": m[F.frame], "data-index": k});
      g.appendChild(svg("rect", {x: 0, y: y - 20, width: W, height: rowH, "class": "hit"}));
      g.appendChild(svg("text", {x: 6, y: y - 3, "class": "time"}, "+" + fmtMs(m[F.t])));
      g.appendChild(svg("text", {x: 6, y: y + 9, "class": "frame"}, "frame " + m[F.frame]));
      if (x1 === x2) {
        g.appendChild(svg("path", {d: "M" + x1 + "," + (y - 8) + " h34 v12 h-34", "marker-end": "url(#" + mk + ")"}));
      } else {
        g.appendChild(svg("line", {x1: x1, y1: y, x2: x2, y2: y, "marker-end": "url(#" + mk + ")"}));
      }
      var label = m[F.label] + (m[F.sdp] ? " (SDP)" : "") + (m[F.retrans] ? " ⟳ retransmission" : "");
      var fits = Math.floor(((x1 === x2 ? colW / 2 : Math.abs(x2 - x1)) - 12) / 7);
      if (label.length > fits) { label = label.slice(0, Math.max(fits - 1, 4)) + "…"; }
      var lx = x1 === x2 ? x1 + 40 : (x1 + x2) / 2;
      g.appendChild(svg("text", {x: lx, y: y - 5, "text-anchor": x1 === x2 ? "start" : "middle", "class": "label"}, label));
      g.appendChild(svg("title", {}, m[F.label] + " · frame " + m[F.frame] + " · CSeq " + m[F.cseq] + " · " + D.endpoints[m[F.src]] + " → " +
        D.endpoints[m[F.dst]] + " · click for the message"));
      g.addEventListener("click", showRaw.bind(null, c, k));
      s.appendChild(g);
    }
    wrap.replaceChildren(s, notes);
    // Notes beside their arrows, pushed down when two would overlap.
    var free = 0;
    function note(idx, cls, title, text, hint) {
      var n = el("div", cls);
      n.appendChild(el("b", "", title));
      n.appendChild(el("div", "", text));
      if (hint) { n.appendChild(el("div", "hint", "Hint: " + hint)); }
      var top = Math.max(head + rowH * idx + 2, free);
      n.style.top = top + "px";
      notes.appendChild(n);
      free = top + n.offsetHeight + 6;
      if (free > H) { notes.style.height = free + "px"; }
    }
    var order = Object.keys(findings).map(Number);
    if (c.breaking_index >= 0) { order.push(c.breaking_index); }
    order.sort(function (a, b) { return a - b; }).forEach(function (idx, n) {
      if (n > 0 && order[n - 1] === idx) { return; }
      if (idx === c.breaking_index) {
        var b = c.breaking;
        note(idx, "note breaking-note", "Broke the call: " + b.rule, text(b.explanation), text(b.hint));
      } else {
        var f = findings[idx];
        note(idx, "note finding-note", f.rule + " (" + f.severity + ")", text(f.explanation), text(f.hint));
      }
    });
    if (!count) {
      wrap.replaceChildren(el("div", "empty", D.messages_kept === false
        ? "Live mode keeps no messages of a call, so there is no ladder to draw. To see it, keep the traffic " +
          "(sipflow live --write-pcap) and open that capture with sipflow analyze."
        : "No messages."));
    }
  }

  function showRaw(c, k) {
    var m = D.messages[c.msg_first + k];
    $("raw-title").textContent = "Frame " + m[F.frame] + " · " + m[F.label] + " · CSeq " + m[F.cseq] + " · " +
      D.endpoints[m[F.src]] + " → " + D.endpoints[m[F.dst]] + " · +" + fmtMs(m[F.t]) + (m[F.retrans] ? " · retransmission" : "");
    $("raw").textContent = m[F.raw] === null
      ? "(The raw text of this message was left out to keep the report small; it is frame " + m[F.frame] + " in the capture.)"
      : m[F.raw];
    Array.prototype.forEach.call(document.querySelectorAll("svg.ladder .msg"), function (g) {
      g.classList.toggle("selected", Number(g.getAttribute("data-index")) === k);
    });
  }

  function fromHash() {
    var m = /^#call=(\d+)$/.exec(location.hash);
    if (m) {
      if (Number(m[1]) !== state.open || $("drawer").hidden) { openCall(Number(m[1]), false); }
    } else if (!$("drawer").hidden) {
      closeCall();
    }
  }

  // ---------------------------------------------------------------- start
  document.title = D.title;
  summary();
  kpis();
  security();
  outcomes();
  codes();
  timeChart();
  pddChart();
  tableSetup();
  applyFilters(false);
  $("d-close").addEventListener("click", closeCall);
  document.addEventListener("keydown", function (e) { if (e.key === "Escape" && !$("drawer").hidden) { closeCall(); } });
  window.addEventListener("hashchange", fromHash);
  fromHash();
  document.body.dataset.ready = "1";
}());
