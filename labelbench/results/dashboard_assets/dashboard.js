/* labelbench dashboard: presents the data labelbench.results.dashboard embeds (#lb-data).
   Every number shown was computed in Python; this script only filters, sorts, hides, draws
   and lists. Strings reach the page as text (createTextNode, textContent, setAttribute),
   never as HTML; nothing is evaluated. */
(function () {
  "use strict";
  var T0 = performance.now();
  // The data: JSON, or for a large store JSON compressed with gzip in base64, which the
  // browser's own DecompressionStream inflates (no library, no network).
  var block = document.getElementById("lb-data");
  if (block.getAttribute("data-encoding") === "gzip+base64") {
    var bin = atob(block.textContent.trim()), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text()
      .then(function (text) { main(JSON.parse(text)); })
      .catch(function (e) {
        document.getElementById("boards").textContent = "This browser could not unpack the" +
          " dashboard's data (" + e + "); open it in a current Chrome, Firefox or Safari.";
      });
  } else main(JSON.parse(block.textContent));

  function main(D) {
    var T1 = performance.now();
    var SVGNS = "http://www.w3.org/2000/svg"; // an XML namespace name, not fetched
    var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
      "#7f7f7f", "#bcbd22", "#17becf"];
    var DASHES = ["", "7 4", "2 3"];
    var SYM = D.sym;
    var S = { metric: D.metric, filt: {}, hidden: Object.create(null), sort: {}, open: null };
    D.fields.forEach(function (f) { S.filt[f] = ""; });

    // --- small DOM helpers: text only --------------------------------------------------------
    function $(id) { return document.getElementById(id); }
    function fill(e, attrs, kids) {
      if (attrs) Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, String(v));
      });
      (kids || []).forEach(function (c) {
        if (c === null || c === undefined || c === false) return;
        e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
      });
      return e;
    }
    function h(tag, attrs, kids) { return fill(document.createElement(tag), attrs, kids); }
    function s(tag, attrs, kids) { return fill(document.createElementNS(SVGNS, tag), attrs, kids); }
    function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }
    // Build a part of the page when it comes near the viewport: at 100k runs there are
    // hundreds of charts and tens of thousands of cells, and most are never scrolled to.
    var observer = null, pending = new Map(), LAZY = {}, EAGER = null;
    function lazy(group, holder, build) {
      if (EAGER === null) {  // a small page is drawn at once (searchable with Ctrl+F)
        var cells = 0;
        D.boards.forEach(function (B) { cells += B.cnt.length; });
        EAGER = cells <= D.lazyAbove || !("IntersectionObserver" in window);
      }
      if (EAGER) { build(); return; }
      if (!observer) observer = new IntersectionObserver(function (entries) {
        entries.forEach(function (e) {
          var f = pending.get(e.target);
          if (!e.isIntersecting || !f) return;
          pending.delete(e.target);
          observer.unobserve(e.target);
          f();
        });
      }, { rootMargin: "900px 0px" });
      pending.set(holder, build);
      (LAZY[group] = LAZY[group] || []).push(holder);
      observer.observe(holder);
    }
    function forget(group) {
      (LAZY[group] || []).forEach(function (e) { if (pending.delete(e)) observer.unobserve(e); });
      LAZY[group] = [];
    }

    // --- formatting of the embedded integers ----------------------------------------------------
    function f3(v) { return v === null || v === undefined ? "–" : (v / D.scale).toFixed(3); }
    function f2(v) { return v === null || v === undefined ? "–" : (v / 100).toFixed(2); }
    function fd(v) { return (v < 0 ? "" : "+") + (v / D.scale).toFixed(3); }
    function frun(v) { return v === null || v === undefined ? "–" : (v / D.runScale).toFixed(3); }
    function fh(seconds) {
      if (!seconds) return "0";
      var hours = seconds / 3600;
      return hours >= 100 ? hours.toFixed(0) : hours.toPrecision(3);
    }
    function fnum(v) {
      if (typeof v !== "number") return String(v);
      return Math.abs(v) >= 1000 || Number.isInteger(v) ? String(v) : v.toPrecision(4).replace(/\.?0+$/, "");
    }
    function natural(a, b) {
      var x = parseFloat(a), y = parseFloat(b);
      var nx = String(x) === a || /^-?[0-9.]+(e-?[0-9]+)?$/.test(a), ny = String(y) === b || /^-?[0-9.]+(e-?[0-9]+)?$/.test(b);
      if (nx && ny) return x - y;
      if (nx !== ny) return nx ? -1 : 1;
      return a < b ? -1 : a > b ? 1 : 0;
    }

    // --- structure: where each field sits in a board, which runs a cell holds -------------------
    var budgetSize = {};
    D.boards.forEach(function (B) {
      var bi = D.colFields.indexOf("budget");
      if (bi >= 0 && B.size) B.cols.forEach(function (ck, j) { budgetSize[ck[bi]] = B.size[j]; });
      B.start = [];
      var at = 0;
      B.cnt.forEach(function (n) { B.start.push(at); at += n; });
      B.flat = new Int32Array(at);
      var w = 0;
      B.idx.forEach(function (r) { for (var i = 0; i < r[1]; i++) B.flat[w++] = r[0] + i; });
    });
    var RUNCELL = new Int32Array(D.runs.key.length * 2).fill(-1);
    D.boards.forEach(function (B, b) {
      B.cnt.forEach(function (n, k) {
        for (var i = 0; i < n; i++) {
          var run = B.flat[B.start[k] + i];
          if (RUNCELL[2 * run] < 0) { RUNCELL[2 * run] = b; RUNCELL[2 * run + 1] = k; }
        }
      });
    });
    // the columns of each group (the columns without the budget), for the curves
    var BI = D.colFields.indexOf("budget");
    D.boards.forEach(function (B) {
      var at = {};
      B.groups.forEach(function (g, gi) { at[JSON.stringify(g)] = gi; });
      B.gcols = B.groups.map(function () { return []; });
      if (BI >= 0) B.cols.forEach(function (ck, j) {
        B.gcols[at[JSON.stringify(ck.slice(0, BI).concat(ck.slice(BI + 1)))]].push(j);
      });
    });
    // A metric's statistics as dense per-cell arrays (the JSON leaves out what it can)
    function dense(x, size, dflt) {
      var out = new Array(size).fill(dflt);
      if (Array.isArray(x)) return x;
      if (x) Object.keys(x).forEach(function (k) { out[Number(k)] = x[k]; });
      return out;
    }
    function prepare(name) {
      var M = D.metrics[name];
      if (M.prepared) return M;
      M.boards.forEach(function (st, b) {
        var B = D.boards[b], size = B.rows.length * B.cols.length;
        st.s = dense(st.s, size, null);
        st.d = dense(st.d, size, null);
        st.p = dense(st.p, size, null);
        st.f = dense(st.f, size, 0);
        if (!st.cost.c) st.cost.c = B.cost;
        st.curves = st.curves.map(function (series, gi) {
          return series.map(function (c) {
            if (typeof c !== "number") return c;
            return [c, B.gcols[gi].map(function (j) { return c * B.cols.length + j; }).filter(function (k) { return st.n[k] > 0; })];
          });
        });
      });
      M.prepared = true;
      return M;
    }
    function cellRuns(b, k) {
      var B = D.boards[b];
      return Array.prototype.slice.call(B.flat, B.start[k], B.start[k] + B.cnt[k]);
    }
    function fieldValue(B, k, f) {
      if (f in B.scope) return B.scope[f];
      var nc = B.cols.length, i = D.rowFields.indexOf(f), j = D.colFields.indexOf(f);
      if (i >= 0) return B.rows[Math.floor(k / nc)][i];
      if (j >= 0) return B.cols[k % nc][j];
      return "?";
    }
    var colour = Object.create(null), ncolours = 0;  // one colour per row name, on every chart
    D.boards.forEach(function (B) {
      B.names.forEach(function (name) {
        if (!(name in colour)) {
          colour[name] = [PALETTE[ncolours % PALETTE.length], DASHES[Math.floor(ncolours / PALETTE.length) % DASHES.length]];
          ncolours++;
        }
      });
    });

    // --- filters -------------------------------------------------------------------------------
    function boardVisible(B) {
      return Object.keys(B.scope).every(function (f) {
        var want = S.filt[f];
        return !want || B.scope[f] === want || (f === "model" && B.scope[f] === D.noModel);
      });
    }
    function keyPasses(key, fields) {
      return fields.every(function (f, i) { return !S.filt[f] || key[i] === S.filt[f]; });
    }
    function visibleRows(B) {
      var out = [];
      B.rows.forEach(function (rk, i) { if (keyPasses(rk, D.rowFields)) out.push(i); });
      return out;
    }
    function visibleCols(B) {
      var out = [];
      B.cols.forEach(function (ck, j) { if (keyPasses(ck, D.colFields)) out.push(j); });
      return out;
    }
    function groupFields() { return D.colFields.filter(function (f) { return f !== "budget"; }); }
    function groupVisible(g) { return keyPasses(g, groupFields()); }
    function anyFilter() { return D.fields.some(function (f) { return S.filt[f]; }); }

    // --- controls ------------------------------------------------------------------------------
    function fieldValues(f) {
      var seen = {};
      D.boards.forEach(function (B) {
        if (f in B.scope) seen[B.scope[f]] = 1;
        var i = D.rowFields.indexOf(f), j = D.colFields.indexOf(f);
        if (i >= 0) B.rows.forEach(function (rk) { seen[rk[i]] = 1; });
        if (j >= 0) B.cols.forEach(function (ck) { seen[ck[j]] = 1; });
      });
      var vals = Object.keys(seen);
      if (f === "budget") vals.sort(function (a, b) { return (budgetSize[a] || 0) - (budgetSize[b] || 0) || natural(a, b); });
      else vals.sort(natural);
      return vals;
    }
    function select(name, label, options, value, title) {
      var sel = h("select", { id: "ctl-" + name, "data-control": name, onchange: function () { onControl(name, sel.value); } },
        options.map(function (o) { return h("option", { value: o[0], selected: o[0] === value ? "selected" : null }, [o[1]]); }));
      return h("label", { title: title }, [label, sel]);
    }
    function buildControls() {
      var host = clear($("controls"));
      var metrics = Object.keys(D.metrics);
      host.appendChild(select("metric", "metric", metrics.map(function (m) {
        return [m, m + (D.metrics[m].dir === "max" ? " (higher is better)" : " (lower is better)")];
      }), S.metric, "every metric the records carry with a direction; statistics computed per metric in Python"));
      D.fields.forEach(function (f) {
        var vals = fieldValues(f);
        host.appendChild(select(f, f, [["", "all (" + vals.length + ")"]].concat(vals.map(function (v) { return [v, v]; })), S.filt[f],
          f === "budget" ? "narrows the tables and cost views; curves keep every budget" : "show only this " + f));
      });
      host.appendChild(h("button", { type: "button", id: "ctl-reset", onclick: function () {
        D.fields.forEach(function (f) { S.filt[f] = ""; });
        S.hidden = Object.create(null);
        buildControls();
        update();
      } }, ["reset"]));
      host.appendChild(h("span", { class: "status", id: "ctl-status" }));
    }
    function onControl(name, value) {
      if (name === "metric") S.metric = value; else S.filt[name] = value;
      update();
    }

    // --- leaderboards ----------------------------------------------------------------------------
    function cellText(st, B, b, k) {
      var n = st.n[k], fail = B.fail[k] || 0, ex = st.extra[k] || [0, 0], parts = [], best = null;
      if (!n && !fail) return { parts: ["missing"], best: null, missing: true };
      if (n) {
        best = f3(st.m[k]) + (st.s[k] !== null ? " ± " + f3(st.s[k]) : "");
        parts.push("(" + n + (st.f[k] & 2 ? SYM.short : "") + ")");
        if (st.d[k] !== null) parts.push("Δ" + fd(st.d[k]) + (st.f[k] & 4 ? SYM.better : st.f[k] & 8 ? SYM.worse : ""));
      }
      if (fail) parts.push(SYM.failed + fail);
      if (ex[0]) parts.push(SYM.dup + ex[0]);
      if (ex[1]) parts.push(SYM.improving + ex[1]);
      var pub = st.pub && st.pub[k];
      if (pub) parts.push("· " + pub[0]);
      return { parts: parts, best: best, bold: !!(st.f[k] & 1) };
    }
    function sortValue(st, B, key, i) {
      var sign = D.metrics[S.metric].dir === "max" ? -1 : 1; // best first
      if (key === "name") return B.names[i];
      if (key === "rank") return st.rank[i];
      if (key === "borda") return st.borda[i] === null ? null : -st.borda[i];
      if (key.charAt(0) === "c") { var v = st.m[i * B.cols.length + Number(key.slice(1))]; return v === null ? null : sign * v; }
      if (key.charAt(0) === "a") { var a = st.aubc[Number(key.slice(1))][i]; return a === null ? null : sign * a; }
      if (key.charAt(0) === "t") return st.reach[Number(key.slice(1))][i];
      return null;
    }
    function sortedRows(st, B, b, rows) {
      var how = S.sort[b];
      if (!how) return rows;
      return rows.slice().sort(function (x, y) {
        var a = sortValue(st, B, how.key, x), c = sortValue(st, B, how.key, y);
        if (a === null || a === undefined) return c === null || c === undefined ? x - y : 1;
        if (c === null || c === undefined) return -1;
        var r = typeof a === "string" ? natural(a, c) : a - c;
        return (r || x - y) * how.dir;
      });
    }
    function header(b, key, text, title, cls) {
      var how = S.sort[b];
      var sorted = how && how.key === key ? (how.dir > 0 ? " sorted-asc" : " sorted-desc") : "";
      return h("th", { "data-sort": key, "data-b": b, class: (cls || "") + sorted, title: title || "click to sort" }, [text]);
    }
    function renderBoards() {
      forget("boards");
      var host = clear($("boards")), M = D.metrics[S.metric], shown = 0;
      D.boards.forEach(function (B, b) {
        if (!boardVisible(B)) return;
        var rows = visibleRows(B), cols = visibleCols(B);
        if (!rows.length || !cols.length) return;
        shown++;
        var sec = host.appendChild(h("section", { class: "board", "data-board": b, style: "min-height:" + (26 * rows.length + 110) + "px" }));
        lazy("boards", sec, function () { sec.style.minHeight = ""; boardSection(sec, b); });
      });
      if (!shown) host.appendChild(h("p", { class: "muted" }, ["No table matches these filters."]));
      var notRun = M.notRun;
      if (notRun.length) {
        host.appendChild(h("section", { class: "board not-run" }, [h("h3", {}, ["published, not run (" + notRun.length + ")"]),
          h("ul", {}, notRun.map(function (x) { return h("li", {}, [x]); }))]));
      }
      $("ctl-status").textContent = "showing " + shown + " of " + D.boards.length + " tables";
    }
    function boardSection(sec, b) {
        clear(sec);
        var B = D.boards[b], M = D.metrics[S.metric], st = M.boards[b], rows = visibleRows(B), cols = visibleCols(B);
        var hidRows = rows.length < B.rows.length, hidCols = cols.length < B.cols.length;
        var partial = hidRows || hidCols;
        var whole = "computed over the whole table (" + B.rows.length + " rows, " + B.cols.length +
          " columns), not only what the filters show";
        var heads = [header(b, "name", D.rowFields.join("/"))];
        cols.forEach(function (j) { heads.push(header(b, "c" + j, B.cols[j].join(" "), "click to sort by this column's mean")); });
        heads.push(header(b, "rank", "avg rank" + (partial ? "*" : ""), partial ? "avg rank " + whole : "mean rank over the columns; click to sort", partial ? "partial" : ""));
        heads.push(header(b, "borda", "Borda" + (partial ? "*" : ""), partial ? "Borda " + whole : "rows beaten, summed over the columns; click to sort", partial ? "partial" : ""));
        var groups = [];
        st.aubcGroups.forEach(function (g, a) {
          if (!groupVisible(B.groups[g])) return;
          groups.push(a);
          var suffix = B.groups.length > 1 ? " " + B.groups[g].join(" ") : "";
          var budgetsHidden = !!S.filt.budget && D.colFields.indexOf("budget") >= 0;
          var note = budgetsHidden ? "*" : "";
          var t = budgetsHidden ? " over every budget of the group, not only the filtered one" : "";
          heads.push(header(b, "a" + a, "AUBC" + suffix + note, "area under the budget curve / budget range" + t, budgetsHidden ? "partial" : ""));
          if (B.base !== null) heads.push(header(b, "t" + a, "→target" + suffix + note, "fewest labels to reach the target" + t, budgetsHidden ? "partial" : ""));
        });
        var body = sortedRows(st, B, b, rows).map(function (i) {
          var tds = [h("th", {}, [B.names[i] + (i === B.base ? " (baseline)" : "")])];
          cols.forEach(function (j) {
            var k = i * B.cols.length + j, c = cellText(st, B, b, k), pub = st.pub && st.pub[k];
            var cls = "cell" + (c.missing ? " missing" : "") + (pub && pub[1] ? " outside" : "") +
              (S.open && S.open[0] === b && S.open[1] === k ? " open" : "");
            var kids = [];
            if (c.best !== null) kids.push(c.bold ? h("b", {}, [c.best]) : c.best);
            if (c.parts.length) kids.push((kids.length ? " " : "") + c.parts.join(" "));
            tds.push(h("td", { class: cls, "data-b": b, "data-k": k }, kids));
          });
          tds.push(h("td", {}, [f2(st.rank[i])]));
          tds.push(h("td", {}, [st.borda[i] === null ? "–" : String(st.borda[i])]));
          groups.forEach(function (a) {
            tds.push(h("td", {}, [f3(st.aubc[a][i])]));
            if (B.base !== null) tds.push(h("td", {}, [st.reach[a][i] === null ? "–" : String(st.reach[a][i])]));
          });
          return h("tr", {}, tds);
        });
        fill(sec, {}, [
          h("h3", {}, [st.title]),
          h("table", {}, [h("thead", {}, [h("tr", {}, heads)]), h("tbody", {}, body)]),
          partial ? h("p", { class: "partial-note" }, ["* avg rank and Borda are " + whole +
            "; bold marks the best of all rows. `labelbench dashboard --filter ...` recomputes them for a subset."]) : null,
          h("p", { class: "legend" }, [st.legend + "; click a cell for its runs, a header to sort"]),
          st.pubLine ? h("p", { class: "legend published" }, [st.pubLine]) : null,
          st.warn.length ? h("div", { class: "note warnings" }, [h("b", {}, ["Warnings:"]), h("ul", {}, st.warn.map(function (w) { return h("li", {}, [w]); }))]) : null
        ]);
    }


    // --- budget curves -----------------------------------------------------------------------------
    var POINTS = [];
    function niceTicks(lo, hi) {
      var span = hi - lo, raw = span / 5, mag = Math.pow(10, Math.floor(Math.log10(raw)));
      var step = [1, 2, 2.5, 5, 10].map(function (m) { return m * mag; }).filter(function (x) { return span / x <= 5; })[0];
      var dec = Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) + (step / mag === 2.5 ? 1 : 0), out = [];
      for (var t = Math.ceil(lo / step - 1e-9) * step; t <= hi + 1e-12; t += step) out.push(t);
      return { ticks: out, dec: dec };
    }
    function renderCharts() {
      forget("charts");
      var host = clear($("charts")), M = D.metrics[S.metric], n = 0;
      POINTS = [];
      if (D.colFields.indexOf("budget") < 0) {
        host.appendChild(h("p", { class: "muted" }, ["No budget curves: the columns do not include the budget."]));
        return;
      }
      D.boards.forEach(function (B, b) {
        if (!boardVisible(B)) return;
        var rowsOk = {};
        visibleRows(B).forEach(function (i) { rowsOk[i] = 1; });
        B.groups.forEach(function (g, gi) {
          if (!groupVisible(g)) return;
          var st = M.boards[b];
          var series = st.curves[gi].filter(function (c) { return rowsOk[c[0]]; }).map(function (c) {
            return [c[0], c[1].map(function (p) {
              return typeof p === "number" ? [B.size[p % B.cols.length], st.m[p], st.s[p], st.n[p], p] : [p[0], p[1], p[2], p[3], -1];
            })];
          });
          if (!series.length) return;
          host.appendChild(chart(B, b, M, gi, series));
          n++;
        });
      });
      if (!n) host.appendChild(h("p", { class: "muted" }, ["No curve matches these filters."]));
    }
    function chartCaption(B, M, gi) {
      var g = B.groups[gi];
      var gname = groupFields().map(function (f, i) { return f + "=" + g[i]; }).join(" · ");
      var scope = Object.keys(B.scope).map(function (f) { return f + "=" + B.scope[f]; }).join(" · ");
      return [scope, gname].filter(Boolean).join(" · ") + " — " + S.metric + " vs labels (" +
        (M.dir === "max" ? "higher" : "lower") + " is better)";
    }
    function chart(B, b, M, gi, series) {
      var fig = h("figure", { "data-board": b, "data-group": gi, style: "min-height:330px;min-width:514px" },
        [h("figcaption", {}, [chartCaption(B, M, gi)])]);
      lazy("charts", fig, function () {
        drawChart(B, b, M, gi, series).forEach(function (e) { fig.appendChild(e); });
        fig.style.minHeight = "";
      });
      return fig;
    }
    function drawChart(B, b, M, gi, series) {
      var st = M.boards[b], caption = chartCaption(B, M, gi);
      var shown = series.filter(function (c) { return !S.hidden[B.names[c[0]]]; });
      var pw = 440, ph = 240, L = 58, T = 10, R = 14, Bt = 44, W = L + pw + R, H = T + ph + Bt;
      var xs = [], lo = Infinity, hi = -Infinity, target = st.target[gi];
      series.forEach(function (c) { c[1].forEach(function (p) { if (xs.indexOf(p[0]) < 0) xs.push(p[0]); }); });
      xs.sort(function (a, c) { return a - c; });
      shown.forEach(function (c) { c[1].forEach(function (p) { lo = Math.min(lo, p[1] - (p[2] || 0)); hi = Math.max(hi, p[1] + (p[2] || 0)); }); });
      if (target !== null) { lo = Math.min(lo, target); hi = Math.max(hi, target); }
      if (!isFinite(lo)) { lo = 0; hi = D.scale; }
      var pad = hi > lo ? (hi - lo) * 0.06 : Math.max(Math.abs(hi) * 0.05, D.scale / 100);
      var y0 = (lo - pad) / D.scale, y1 = (hi + pad) / D.scale;
      var log = xs[0] > 0 && xs[xs.length - 1] / xs[0] > 10;
      var fx = log ? Math.log10 : Number, x0 = fx(xs[0]), x1 = fx(xs[xs.length - 1]);
      if (x1 === x0) { x0 -= 1; x1 += 1; }
      function sx(x) { return L + pw * (0.04 + 0.92 * (fx(x) - x0) / (x1 - x0)); }
      function sy(y) { return T + ph * (1 - (y / D.scale - y0) / (y1 - y0)); }
      var svg = s("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "font-size": 12 }, [
        s("title", {}, [caption]),
        s("rect", { x: L, y: T, width: pw, height: ph, fill: "#fbfcfd", stroke: "#c3cad4" })
      ]);
      var yt = niceTicks(y0, y1);
      yt.ticks.forEach(function (t) {
        var y = T + ph * (1 - (t - y0) / (y1 - y0));
        svg.appendChild(s("line", { x1: L, x2: L + pw, y1: y.toFixed(1), y2: y.toFixed(1), stroke: "#e6e9ee" }));
        svg.appendChild(s("text", { x: L - 6, y: (y + 4).toFixed(1), "text-anchor": "end", fill: "#444" }, [t.toFixed(yt.dec)]));
      });
      var last = -1e9;
      xs.forEach(function (x) {
        var px = sx(x);
        svg.appendChild(s("line", { x1: px.toFixed(1), x2: px.toFixed(1), y1: T, y2: T + ph, stroke: "#eef0f3" }));
        if (px - last >= 8 * String(x).length + 6) {
          svg.appendChild(s("text", { x: px.toFixed(1), y: T + ph + 17, "text-anchor": "middle", fill: "#444" }, [String(x)]));
          last = px;
        }
      });
      svg.appendChild(s("text", { x: L + pw / 2, y: T + ph + 36, "text-anchor": "middle", fill: "#222" }, [log ? "labels (log scale)" : "labels"]));
      svg.appendChild(s("text", { x: 14, y: T + ph / 2, "text-anchor": "middle", fill: "#222", transform: "rotate(-90 14 " + (T + ph / 2) + ")" }, [S.metric]));
      if (target !== null) {
        var ty = sy(target).toFixed(1);
        svg.appendChild(s("line", { x1: L, x2: L + pw, y1: ty, y2: ty, stroke: "#888", "stroke-dasharray": "5 4" }));
        svg.appendChild(s("text", { x: L + 6, y: ty - 4, fill: "#777", "font-size": 11 }, ["target " + f3(target)]));
      }
      var k = shown.length;
      shown.forEach(function (c, si) {
        var i = c[0], name = B.names[i], col = colour[name], width = i === B.base ? 2.6 : 1.8;
        var nudge = (si - (k - 1) / 2) * Math.min(3, 12 / k);
        var grp = s("g", { class: "series", "data-row": name });
        if (c[1].length > 1) {
          grp.appendChild(s("polyline", { points: c[1].map(function (p) { return (sx(p[0]) + nudge).toFixed(1) + "," + sy(p[1]).toFixed(1); }).join(" "),
            fill: "none", stroke: col[0], "stroke-width": width, "stroke-dasharray": col[1] || null, "stroke-linejoin": "round" }));
        }
        c[1].forEach(function (p) {
          var px = sx(p[0]) + nudge, py = sy(p[1]);
          if (p[2]) {
            var ya = sy(p[1] - p[2]).toFixed(1), yb = sy(p[1] + p[2]).toFixed(1);
            grp.appendChild(s("path", { d: "M" + px.toFixed(1) + " " + ya + "V" + yb + "M" + (px - 4).toFixed(1) + " " + ya + "h8M" + (px - 4).toFixed(1) + " " + yb + "h8",
              stroke: col[0], "stroke-width": 1.2, fill: "none", opacity: 0.8 }));
          }
          POINTS.push({ b: b, k: p[4], x: p[0], m: p[1], s: p[2], n: p[3], name: name });
          grp.appendChild(s("circle", { class: "pt", cx: px.toFixed(1), cy: py.toFixed(1), r: 3.6, fill: col[0], stroke: "#fff", "stroke-width": 1,
            "data-pt": POINTS.length - 1, "data-b": b, "data-k": p[4] >= 0 ? p[4] : null }));
        });
        svg.appendChild(grp);
      });
      var keys = h("div", { class: "keys" }, series.map(function (c) {
        var name = B.names[c[0]], col = colour[name];
        return h("button", { type: "button", class: S.hidden[name] ? "off" : null, "data-toggle": name, title: "show or hide " + name + " on every curve",
          onclick: function () { if (S.hidden[name]) delete S.hidden[name]; else S.hidden[name] = 1; renderCharts(); } },
          [h("span", { class: "sw", style: "border-top-color:" + col[0] + (col[1] ? ";border-top-style:dashed" : "") }), name + (c[0] === B.base ? " (baseline)" : "")]);
      }));
      return [svg, keys];
    }

    // --- tooltips and run lists ----------------------------------------------------------------
    function cellLabel(B, k) {
      var nc = B.cols.length;
      return B.names[Math.floor(k / nc)] + " · " + B.cols[k % nc].join(" ");
    }
    function cellLines(b, k) {
      var B = D.boards[b], st = D.metrics[S.metric].boards[b], lines = [];
      if (st.n[k]) lines.push(S.metric + ": " + f3(st.m[k]) + (st.s[k] !== null ? " ± " + f3(st.s[k]) : "") + "  (n=" + st.n[k] + ")");
      else lines.push(S.metric + ": no ok run");
      if (B.base !== null) {
        if (st.d[k] !== null) {
          var sig = st.f[k] & 4 ? " " + SYM.better + " significantly better" : st.f[k] & 8 ? " " + SYM.worse + " significantly worse" : "";
          var pairs = k in st.pairs ? st.pairs[k] : st.n[k];
          lines.push("Δ vs " + B.names[B.base] + ": " + fd(st.d[k]) + "  p=" + (st.p[k] === null ? "–" : st.p[k]) + " (" + pairs + " paired seeds)" + sig);
        } else if (Math.floor(k / B.cols.length) === B.base) lines.push("the baseline");
        else lines.push("Δ, p: no seed shared with " + B.names[B.base]);
      }
      if (B.fail[k]) lines.push(SYM.failed + B.fail[k] + " failed run(s)");
      var ex = st.extra[k];
      if (ex && ex[0]) {
        var dif = st.differs[k] || {};
        lines.push(SYM.dup + ex[0] + " more run(s) of a seed already counted" + (Object.keys(dif).length ? "; their configs differ in " +
          Object.keys(dif).map(function (key) { return key + " (" + dif[key].join(", ") + ")"; }).join(", ") : ""));
      }
      if (ex && ex[1]) lines.push(SYM.improving + ex[1] + " still improving when training stopped");
      var pub = st.pub && st.pub[k];
      if (pub) lines.push(pub[2] + "  (" + pub[0] + ")");
      var key = S.metric + "|" + b;
      if (!(key in COSTS)) COSTS[key] = costPoints(B, st);
      var c = COSTS[key][k];
      lines.push(B.cnt[k] + " run(s) · " + fh(B.cpu[k]) + " CPU h" + (B.gpu[k] ? " · " + fh(B.gpu[k]) + " GPU h" : "") +
        (c ? " · label cost " + fnum(c[2]) + (c[4] ? " · ★ label-cost Pareto" : "") : ""));
      return lines;
    }
    var COSTS = {};
    var tip = $("tip");
    function showTip(ev, lines) {
      tip.textContent = lines.join("\n");
      tip.hidden = false;
      var x = ev.clientX + 14, y = ev.clientY + 14, r = tip.getBoundingClientRect();
      if (x + r.width > window.innerWidth - 8) x = ev.clientX - r.width - 14;
      if (y + r.height > window.innerHeight - 8) y = ev.clientY - r.height - 14;
      tip.style.left = Math.max(4, x) + "px";
      tip.style.top = Math.max(4, y) + "px";
    }
    document.addEventListener("mousemove", function (ev) {
      var t = ev.target.closest ? ev.target.closest("[data-pt],td[data-k]") : null;
      if (!t) { tip.hidden = true; return; }
      var b = Number(t.getAttribute("data-b")), B = D.boards[b];
      if (t.hasAttribute("data-pt")) {
        var p = POINTS[Number(t.getAttribute("data-pt"))];
        var lines = [p.name + " · " + p.x + " labels"];
        if (p.k >= 0) lines = lines.concat(cellLines(b, p.k));
        else lines.push(S.metric + ": " + f3(p.m) + (p.s !== null ? " ± " + f3(p.s) : "") + "  (n=" + p.n + ", per-round points of active learning: no paired test per round)");
        if (p.k >= 0) lines.push("click for the runs");
        showTip(ev, lines);
      } else {
        var k = Number(t.getAttribute("data-k"));
        showTip(ev, [cellLabel(B, k)].concat(cellLines(b, k), B.cnt[k] ? ["click for the " + B.cnt[k] + " run(s)"] : []));
      }
    });
    document.addEventListener("click", function (ev) {
      var t = ev.target.closest ? ev.target.closest("[data-k],th[data-sort]") : null;
      if (!t) return;
      var b = Number(t.getAttribute("data-b"));
      if (t.hasAttribute("data-sort")) {
        var key = t.getAttribute("data-sort"), how = S.sort[b];
        S.sort[b] = how && how.key === key ? { key: key, dir: -how.dir } : { key: key, dir: 1 };
        var sec = t.closest("section.board");
        if (sec) boardSection(sec, b);
        return;
      }
      var k = Number(t.getAttribute("data-k"));
      if (k < 0 || !D.boards[b].cnt[k]) return;
      openCell([b, k]);
    });
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && S.open) openCell(null);
    });
    function openCell(which) {
      var was = document.querySelectorAll("td.open");
      for (var i = 0; i < was.length; i++) was[i].classList.remove("open");
      S.open = which;
      if (which) {
        var now = document.querySelectorAll('td.cell[data-b="' + which[0] + '"][data-k="' + which[1] + '"]');
        for (var j = 0; j < now.length; j++) now[j].classList.add("open");
      }
      renderRuns();
    }

    function scalar(v) {
      if (v === null) return "null";
      if (typeof v === "string") return /^[^\s{[#"'].*[^\s]$|^[^\s{[#"']$/.test(v) && v.indexOf(": ") < 0 ? v : JSON.stringify(v);
      if (Array.isArray(v)) return "[" + v.map(function (x) { return typeof x === "object" && x !== null && !Array.isArray(x) ? JSON.stringify(x) : scalar(x); }).join(", ") + "]";
      if (typeof v === "object") return "{}";
      return String(v);
    }
    function yaml(key, v, pad, out) {
      if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) {
        out.push(pad + key + ":");
        Object.keys(v).forEach(function (k) { yaml(k, v[k], pad + "  ", out); });
      } else out.push(pad + key + ": " + scalar(v));
    }
    function configText(run) {
      var shape = D.runs.cfg[run];
      if (shape < 0) return "(config could not be read)";
      var parts = D.cfg.shapes[shape].map(function (i) { return i < 0 ? ["seed", D.runs.seed[run]] : D.cfg.sections[i]; }), out = [];
      parts.sort(function (a, b) { return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0; });
      parts.forEach(function (p) { yaml(p[0], p[1], "", out); });
      return out.join("\n");
    }
    var MAX_LISTED = 400;
    function renderRuns() {
      var host = clear($("runs"));
      if (!S.open) { host.hidden = true; return; }
      host.hidden = false;
      var b = S.open[0], k = S.open[1], B = D.boards[b], runs = cellRuns(b, k), vals = D.runs.val[S.metric];
      var scope = Object.keys(B.scope).map(function (f) { return f + "=" + B.scope[f]; }).join(" · ");
      host.appendChild(h("button", { type: "button", class: "close", title: "close (Esc)", onclick: function () { openCell(null); } }, ["×"]));
      host.appendChild(h("h3", {}, [cellLabel(B, k)]));
      host.appendChild(h("p", { class: "muted" }, [scope]));
      host.appendChild(h("p", {}, cellLines(b, k).map(function (l, i) { return h("span", {}, [(i ? "\n" : "") + l]); })));
      host.lastChild.style.whiteSpace = "pre-line";
      host.appendChild(h("p", { class: "muted" }, [runs.length + " run(s), failed first, then by seed; " + S.metric + " per run; click a run for its config" +
        (runs.length > MAX_LISTED ? "; the first " + MAX_LISTED + " listed" : "")]));
      var list = h("div", { class: "run-list" });
      runs.slice(0, MAX_LISTED).forEach(function (run) {
        var err = D.runs.err[run], ok = err === undefined;
        var det = h("details", { class: "run", "data-run": D.runs.key[run] }, [
          h("summary", {}, [h("span", { class: ok ? "status-ok" : "status-failed" }, [ok ? "ok" : "failed"]),
            " seed " + D.runs.seed[run] + " · " + S.metric + " " + frun(vals[run]) + " · ", h("span", { class: "mono" }, [D.runs.key[run]]),
            ok ? null : h("div", { class: "err mono" }, [err])])
        ]);
        if (D.runs.file[run]) det.appendChild(h("p", { class: "muted" }, ["record file " + D.runs.file[run]]));
        det.addEventListener("toggle", function () {
          if (det.open && !det.querySelector("pre.config")) det.appendChild(h("pre", { class: "config" }, [configText(run)]));
        });
        list.appendChild(det);
      });
      host.appendChild(list);
      if (D.store) host.appendChild(h("p", { class: "muted" }, ["records: " + D.store + "/runs/<run_key>.json"]));
    }

    // --- realised label statistics ---------------------------------------------------------------
    function sortable(heads, rows, attrs) {
      var state = { col: -1, dir: 1 }, body = h("tbody");
      function draw() {
        clear(body);
        var order = rows.slice();
        if (state.col >= 0) order.sort(function (a, b) {
          var x = a[state.col].v, y = b[state.col].v;
          if (x === null || x === undefined) return 1;
          if (y === null || y === undefined) return -1;
          return (typeof x === "string" ? natural(x, y) : x - y) * state.dir;
        });
        order.forEach(function (r) {
          body.appendChild(h("tr", {}, r.map(function (c) { return h("td", { title: c.title, class: c.cls }, [c.t === undefined ? String(c.v) : c.t]); })));
        });
      }
      var ths = heads.map(function (hd, i) {
        return h("th", { title: hd[1] || "click to sort", onclick: function () {
          state.dir = state.col === i ? -state.dir : 1;
          state.col = i;
          ths.forEach(function (t, j) { t.className = j === i ? (state.dir > 0 ? "sorted-asc" : "sorted-desc") : ""; });
          draw();
        } }, [hd[0]]);
      });
      draw();
      return h("div", { class: "board" }, [h("table", attrs || {}, [h("thead", {}, [h("tr", {}, ths)]), body])]);
    }
    function renderRealised() {
      var host = clear($("realised-body"));
      var shown = D.realised.filter(function (r) { return (!S.filt.dataset || r.dataset === S.filt.dataset) && (!S.filt.regime || r.regime === S.filt.regime); });
      if (!shown.length) { host.appendChild(h("p", { class: "muted" }, ["No realised statistics for these filters."])); return; }
      var keys = [];
      shown.forEach(function (r) { Object.keys(r.stats).forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); }); });
      keys.sort();
      host.appendChild(h("p", { class: "legend" }, ["What the labels realised, per dataset and regime, as the records hold it (labels.noise_rate, labels.realised): the mean over the runs; hover for the range. Every strategy sees the same labels at a budget and seed, so the runs repeat them."]));
      host.appendChild(sortable([["dataset"], ["regime"], ["runs"]].concat(keys.map(function (k) { return [k]; })), shown.map(function (r) {
        return [{ v: r.dataset }, { v: r.regime }, { v: r.n }].concat(keys.map(function (k) {
          var x = r.stats[k];
          return x ? { v: x[0], t: fnum(x[0]), title: "min " + fnum(x[1]) + ", max " + fnum(x[2]) + " over " + x[3] + " run(s)" } : { v: null, t: "–" };
        }));
      }), { class: "realised" }));
    }

    // --- compute and label cost ----------------------------------------------------------------
    function costPoints(B, st) {
      var front = {}, out = {};
      st.cost.front.forEach(function (k) { front[k] = 1; });
      st.cost.c.forEach(function (c, k) {
        if (c === null) return;
        out[k] = [Math.floor(k / B.cols.length), k % B.cols.length, c, k in st.cost.m ? st.cost.m[k] : st.m[k], front[k] ? 1 : 0];
      });
      return out;
    }
    function renderCompute() {
      forget("compute");
      var host = clear($("compute-body")), M = D.metrics[S.metric], any = false;
      host.appendChild(h("p", { class: "legend" }, ["Per cell: CPU hours (total_s × devices of its runs on a CPU) and, after +, GPU hours (total_s × devices where trainer.accelerator is gpu, cuda or mps), failed runs included. " +
        "★: on the label-cost Pareto front of " + S.metric + " (no other cell of the table is at least as cheap and as good, and better in one; computed over the whole table). Hover a cell for its label cost and runs."]));
      D.boards.forEach(function (B, b) {
        if (!boardVisible(B)) return;
        var st = M.boards[b], rows = visibleRows(B), cols = visibleCols(B);
        if (!rows.length || !cols.length) return;
        any = true;
        host.appendChild(h("h3", {}, [st.title.split(" — ")[0] + " — hours of compute"]));
        var holder = host.appendChild(h("div", { class: "split", "data-board": b, style: "min-height:" + Math.max(280, 26 * rows.length + 40) + "px" }));
        lazy("compute", holder, function () { holder.style.minHeight = ""; computeBoard(holder, B, b, M, rows, cols); });
      });
      if (!any) host.appendChild(h("p", { class: "muted" }, ["No cell matches these filters."]));
    }
    function computeBoard(holder, B, b, M, rows, cols) {
        var st = M.boards[b], cost = costPoints(B, st), points = [];
        var body = rows.map(function (i) {
          var cpu = 0, gpu = 0;
          var tds = cols.map(function (j) {
            var k = i * B.cols.length + j, c = cost[k];
            if (c) points.push(c);
            cpu += B.cpu[k]; gpu += B.gpu[k];
            if (!B.cnt[k]) return h("td", { class: "missing" }, ["–"]);
            return h("td", { class: "cell" + (c && c[4] ? " pareto" : ""), "data-b": b, "data-k": k },
              [(c && c[4] ? "★ " : "") + fh(B.cpu[k]) + (B.gpu[k] ? " + " + fh(B.gpu[k]) + " GPU" : "")]);
          });
          return h("tr", {}, [h("th", {}, [B.names[i]])].concat(tds, [h("td", {}, [fh(cpu) + (gpu ? " + " + fh(gpu) + " GPU" : "")])]));
        });
        var table = h("div", { class: "board" }, [h("table", { class: "compute" }, [
          h("thead", {}, [h("tr", {}, [h("th", {}, [D.rowFields.join("/")])].concat(cols.map(function (j) { return h("th", {}, [B.cols[j].join(" ")]); }), [h("th", {}, ["row total"])]))]),
          h("tbody", {}, body)])]);
        holder.appendChild(table);
        holder.appendChild(paretoChart(B, M, points));
    }
    function paretoChart(B, M, points) {
      if (!points.length) return h("p", { class: "muted" }, ["No label costs recorded."]);
      var W = 380, H = 260, L = 56, T = 10, pw = W - L - 12, ph = H - T - 40;
      var xs = points.map(function (p) { return p[2]; }), ys = points.map(function (p) { return p[3]; });
      var xa = Math.min.apply(null, xs), xb = Math.max.apply(null, xs), ya = Math.min.apply(null, ys), yb = Math.max.apply(null, ys);
      if (xb === xa) { xa -= 1; xb += 1; }
      if (yb === ya) { ya -= 1; yb += 1; }
      var log = xa > 0 && xb / xa > 10;
      var fx = log ? Math.log10 : Number;
      function sx(x) { return L + pw * (0.05 + 0.9 * (fx(x) - fx(xa)) / (fx(xb) - fx(xa))); }
      function sy(y) { return T + ph * (0.95 - 0.9 * (y - ya) / (yb - ya)); }
      var svg = s("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "font-size": 11 }, [
        s("title", {}, ["label cost vs " + S.metric]),
        s("rect", { x: L, y: T, width: pw, height: ph, fill: "#fbfcfd", stroke: "#c3cad4" }),
        s("text", { x: L + pw / 2, y: H - 8, "text-anchor": "middle", fill: "#222" }, ["label cost" + (log ? " (log scale)" : "")]),
        s("text", { x: 12, y: T + ph / 2, "text-anchor": "middle", fill: "#222", transform: "rotate(-90 12 " + (T + ph / 2) + ")" }, [S.metric]),
        s("text", { x: L - 4, y: sy(ya) + 4, "text-anchor": "end", fill: "#444" }, [f3(ya)]),
        s("text", { x: L - 4, y: sy(yb) + 4, "text-anchor": "end", fill: "#444" }, [f3(yb)]),
        s("text", { x: sx(xa), y: T + ph + 14, "text-anchor": "middle", fill: "#444" }, [fnum(xa)]),
        s("text", { x: sx(xb), y: T + ph + 14, "text-anchor": "middle", fill: "#444" }, [fnum(xb)])
      ]);
      var front = points.filter(function (p) { return p[4]; }).sort(function (a, b) { return a[2] - b[2]; });
      if (front.length > 1) svg.appendChild(s("polyline", { points: front.map(function (p) { return sx(p[2]).toFixed(1) + "," + sy(p[3]).toFixed(1); }).join(" "), fill: "none", stroke: "#157f3b", "stroke-width": 1.5 }));
      points.forEach(function (p) {
        var name = B.names[p[0]], k = p[0] * B.cols.length + p[1];
        svg.appendChild(s("circle", { cx: sx(p[2]).toFixed(1), cy: sy(p[3]).toFixed(1), r: p[4] ? 4.2 : 3, fill: colour[name][0], stroke: p[4] ? "#157f3b" : "#fff",
          "stroke-width": p[4] ? 2 : 1, "data-b": D.boards.indexOf(B), "data-k": k }, [s("title", {}, [cellLabel(B, k) + ": cost " + fnum(p[2]) + ", " + f3(p[3]) + (p[4] ? " (Pareto)" : "")])]));
      });
      return h("figure", {}, [h("figcaption", {}, ["label cost vs " + S.metric + " (Pareto front in green)"]), svg]);
    }

    // --- failed runs -----------------------------------------------------------------------------
    var MAX_FAILED = 500;
    function renderFailed() {
      var host = clear($("failed-body")), rows = [];
      Object.keys(D.runs.err).forEach(function (key) {
        var run = Number(key), b = RUNCELL[2 * run], k = RUNCELL[2 * run + 1];
        if (b < 0) return;
        var B = D.boards[b], nc = B.cols.length, i = Math.floor(k / nc), j = k % nc;
        if (!boardVisible(B) || !keyPasses(B.rows[i], D.rowFields) || !keyPasses(B.cols[j], D.colFields)) return;
        rows.push([{ v: D.runs.key[run], cls: "mono" }].concat(D.fields.map(function (f) { return { v: fieldValue(B, k, f) }; }),
          [{ v: D.runs.seed[run] }, { v: D.runs.err[key], cls: "err mono" }]));
      });
      if (!rows.length) { host.appendChild(h("p", { class: "muted" }, ["No failed runs" + (anyFilter() ? " under these filters." : ".")])); return; }
      host.appendChild(h("p", {}, [rows.length + " failed run(s); their cells count them as " + SYM.failed + "k. Re-launching the same sweep runs them again." +
        (rows.length > MAX_FAILED ? " The first " + MAX_FAILED + " are listed." : "")]));
      host.appendChild(sortable([["run"]].concat(D.fields.map(function (f) { return [f]; }), [["seed"], ["error"]]), rows.slice(0, MAX_FAILED), { class: "failed" }));
    }

    function update() {
      var t0 = performance.now(), parts = {};
      prepare(S.metric);
      [["boards", renderBoards], ["charts", renderCharts], ["realised", renderRealised], ["compute", renderCompute],
        ["failed", renderFailed], ["runs", renderRuns]].forEach(function (r) {
        var t = performance.now();
        r[1]();
        parts[r[0]] = Math.round(performance.now() - t);
      });
      window.__lbRender = { metric: S.metric, ms: performance.now() - t0, parts: parts };
    }
    var T2 = performance.now();
    buildControls();
    update();
    window.__lbTimes = { script: T0, parsed: T1 - T0, indexed: T2 - T1, rendered: performance.now() - T2 };
    // interactive: the first render done and what is in view drawn (the observers run first)
    requestAnimationFrame(function () { setTimeout(function () { window.__lbReady = performance.now(); }, 0); });
  }
})();
