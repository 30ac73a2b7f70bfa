// edi-gateway dashboard: refreshes server-rendered panels, sends operator actions.
// The token (auth mode "token") lives in sessionStorage: this tab only, gone when it closes.
(function () {
  "use strict";
  var KEY = "edigw.token";
  var body = document.body;
  var authOn = body.dataset.auth === "token";
  var every = parseInt(body.dataset.refreshMs || "3000", 10);
  var panels = document.getElementById("panels");

  function headers(extra) {
    var h = Object.assign({}, extra || {});
    var t = sessionStorage.getItem(KEY);
    if (t) { h["Authorization"] = "Bearer " + t; }
    return h;
  }

  function flash(text, isError) {
    var box = document.getElementById("flash");
    var div = document.createElement("div");
    div.textContent = text;
    if (isError) { div.className = "error"; }
    box.appendChild(div);
    setTimeout(function () { div.remove(); }, isError ? 8000 : 4000);
  }

  async function api(method, path, payload) {
    var init = { method: method, headers: headers({ "Content-Type": "application/json" }) };
    if (payload !== undefined) { init.body = JSON.stringify(payload); }
    var r = await fetch(path, init);
    var data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      var msg = data && data.error ? data.error.message : ("HTTP " + r.status);
      throw new Error(msg);
    }
    return data;
  }

  async function refresh() {
    if (!panels) { return; }
    if (authOn && !sessionStorage.getItem(KEY)) { return; }
    try {
      var r = await fetch(panels.dataset.src, { headers: headers() });
      if (r.status === 401 || r.status === 403) {
        var err = await r.json();
        panels.innerHTML = "";
        var p = document.createElement("p");
        p.className = "bad";
        p.textContent = err.error.message + " — enter a token with scope read above.";
        panels.appendChild(p);
        return;
      }
      if (r.ok) {
        panels.innerHTML = await r.text();
        document.getElementById("live").textContent = "live · " + new Date().toLocaleTimeString();
      }
    } catch (e) {
      document.getElementById("live").textContent = "offline: " + e.message;
    }
  }

  document.addEventListener("click", async function (ev) {
    var b = ev.target.closest("button[data-action]");
    if (!b) { return; }
    var action = b.dataset.action, id = b.dataset.filing;
    if (action === "cancel" && !window.confirm("Cancel every undelivered delivery of " + id + "?")) {
      return;
    }
    b.disabled = true;
    try {
      var f = await api("POST", "/v1/filings/" + encodeURIComponent(id) + "/" + action);
      flash(id + ": " + action + " → " + f.status);
    } catch (e) {
      flash(id + ": " + e.message, true);
    }
    b.disabled = false;
    refresh();
  });

  var form = document.getElementById("token-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var input = document.getElementById("token");
      sessionStorage.setItem(KEY, input.value.trim());
      input.value = "";
      refresh();
    });
    document.getElementById("token-forget").addEventListener("click", function () {
      sessionStorage.removeItem(KEY);
      flash("token forgotten");
    });
  }

  // bulk retry: preview (dry run) → count → reason → chunks with a progress bar
  var bulk = document.getElementById("bulk-form");
  var pending = null;
  if (bulk) {
    var box = document.getElementById("bulk-confirm");
    bulk.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var filter = { state: bulk.state.value };
      if (bulk.adapter.value) { filter.adapter = bulk.adapter.value; }
      try {
        var r = await api("POST", "/v1/deliveries/retry", Object.assign({ dry_run: true }, filter));
        pending = Object.assign({ not_after: r.as_of }, filter);
        pending.total = r.matched;
        document.getElementById("bulk-count").textContent = r.matched === 0
          ? "No delivery matches."
          : "This will retry " + r.matched + " deliver" + (r.matched === 1 ? "y" : "ies") + ".";
        document.getElementById("bulk-go").disabled = r.matched === 0;
        box.hidden = false;
      } catch (e) { flash(e.message, true); }
    });
    document.getElementById("bulk-abort").addEventListener("click", function () {
      pending = null; box.hidden = true;
    });
    document.getElementById("bulk-go").addEventListener("click", async function () {
      var reason = document.getElementById("bulk-reason").value.trim();
      if (!pending) { return; }
      if (!reason) { flash("Give a reason: it goes into the audit trail.", true); return; }
      var bar = document.getElementById("bulk-progress");
      bar.hidden = false; bar.max = Math.max(pending.total, 1); bar.value = 0;
      var done = 0;
      try {
        for (;;) {
          var req = { state: pending.state, not_after: pending.not_after, reason: reason, limit: 100 };
          if (pending.adapter) { req.adapter = pending.adapter; }
          var r = await api("POST", "/v1/deliveries/retry", req);
          done += r.count; bar.value = done;
          if (r.count === 0 || r.remaining === 0) { break; }
        }
        flash("Retried " + done + " deliveries.");
      } catch (e) { flash(e.message, true); }
      pending = null; box.hidden = true; bar.hidden = true;
      refresh();
    });
  }

  // pause (issue 21): the form posts to the JSON API; each listed pause has a Resume button
  var pauseForm = document.getElementById("pause-form");
  if (pauseForm) {
    pauseForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var req = { reason: pauseForm.reason.value.trim() };
      ["adapter", "filing_type", "ends_at"].forEach(function (k) {
        var v = pauseForm[k].value.trim();
        if (v) { req[k] = v; }
      });
      try {
        var p = await api("POST", "/v1/pauses", req);
        flash("paused: " + p.id);
        pauseForm.reason.value = "";
      } catch (e) { flash(e.message, true); }
      refresh();
    });
  }
  document.addEventListener("click", async function (ev) {
    var b = ev.target.closest("button[data-resume]");
    if (!b) { return; }
    b.disabled = true;
    try {
      var p = await api("DELETE", "/v1/pauses/" + encodeURIComponent(b.dataset.resume));
      flash("resumed: " + p.id);
    } catch (e) { flash(e.message, true); }
    refresh();
  });

  if (panels) {
    refresh();
    setInterval(refresh, every);
  }
})();
