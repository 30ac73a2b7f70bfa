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

  // the records pages' script (records.js, loaded after this one) uses the same token
  window.edigw = { KEY: KEY, headers: headers, flash: flash };

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

  // the filer filter (?filer=CODE) rides on every panels request and on the stream
  var filer = new URLSearchParams(location.search).get("filer") || "";
  function withFiler(path) {
    return filer ? path + (path.indexOf("?") < 0 ? "?" : "&") + "filer=" + encodeURIComponent(filer) : path;
  }

  function live(text) { document.getElementById("live").textContent = text; }

  async function refresh() {
    if (!panels) { return; }
    if (authOn && !sessionStorage.getItem(KEY)) { return; }
    try {
      var r = await fetch(withFiler(panels.dataset.src), { headers: headers() });
      if (r.status === 401 || r.status === 403 || r.status === 422) {
        var err = await r.json();
        panels.innerHTML = "";
        var p = document.createElement("p");
        p.className = "bad";
        p.textContent = err.error.message + (r.status === 422 ? "" : " — enter a token with scope read above.");
        panels.appendChild(p);
        return;
      }
      if (r.ok) {
        panels.innerHTML = await r.text();
        live("polling · " + new Date().toLocaleTimeString());
      }
    } catch (e) {
      live("offline: " + e.message);
    }
  }

  // Live updates: one server-sent event stream (read with fetch: EventSource cannot send
  // the bearer header). While it is open nothing polls; when it is down the page polls
  // every few seconds and tries the stream again.
  var streaming = false, poller = null, streamAbort = null, retryMs = 3000;
  function startPolling() {
    if (!poller) { poller = setInterval(refresh, every); }
  }
  function stopPolling() {
    if (poller) { clearInterval(poller); poller = null; }
  }
  function onEvent(frame) {
    var event = "message", data = [];
    frame.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) { event = line.slice(6).trim(); }
      else if (line.indexOf("data:") === 0) { data.push(line.slice(5).replace(/^ /, "")); }
      else if (line.indexOf("retry:") === 0) { retryMs = parseInt(line.slice(6), 10) || retryMs; }
    });
    if (event === "panels") {
      panels.innerHTML = data.join("\n");
      live("live · " + new Date().toLocaleTimeString());
    }
  }
  async function stream() {
    if (!panels || !panels.dataset.events) { return; }
    if (authOn && !sessionStorage.getItem(KEY)) { return; }
    if (streamAbort) { streamAbort.abort(); }
    var mine = new AbortController();
    streamAbort = mine;
    try {
      var r = await fetch(withFiler(panels.dataset.events), { headers: headers(), signal: mine.signal });
      if (!r.ok || !r.body) {
        if (r.status === 401 || r.status === 403 || r.status === 422) { refresh(); return; }
        throw new Error("HTTP " + r.status);
      }
      streaming = true;
      stopPolling();
      body.dataset.live = "stream";
      var reader = r.body.getReader(), decoder = new TextDecoder(), buf = "";
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) { break; }
        buf += decoder.decode(chunk.value, { stream: true });
        var at;
        while ((at = buf.indexOf("\n\n")) >= 0) {
          onEvent(buf.slice(0, at));
          buf = buf.slice(at + 2);
        }
      }
    } catch (e) {
      if (mine.signal.aborted) { return; }  // replaced by a newer stream
    }
    if (streamAbort !== mine) { return; }
    streaming = false;
    body.dataset.live = "polling";
    live("stream down · polling");
    refresh();
    startPolling();
    setTimeout(stream, retryMs);
  }
  function connect() {
    stream();
  }

  // after an action: the stream brings the change; without it, fetch at once
  function changed() {
    if (!streaming) { refresh(); }
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
    changed();
  });

  var form = document.getElementById("token-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var input = document.getElementById("token");
      sessionStorage.setItem(KEY, input.value.trim());
      input.value = "";
      connect();
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
      changed();
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
      changed();
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
    changed();
  });

  // outages (issue 21): announce (environment or adapter), end from the list
  var outageForm = document.getElementById("outage-form");
  if (outageForm) {
    outageForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var req = { reason: outageForm.reason.value.trim() };
      ["environment", "adapter", "ends_at", "reference"].forEach(function (k) {
        var v = outageForm[k].value.trim();
        if (v) { req[k] = v; }
      });
      try {
        var o = await api("POST", "/v1/outages", req);
        flash("outage announced: " + o.id);
        outageForm.reason.value = "";
      } catch (e) { flash(e.message, true); }
      changed();
    });
  }

  // reload (issue 21): the config file the gateway started with, checked whole first
  var reloadGo = document.getElementById("reload-go");
  if (reloadGo) {
    reloadGo.addEventListener("click", async function () {
      var list = document.getElementById("reload-result");
      list.replaceChildren();
      try {
        var r = await api("POST", "/v1/admin/reload");
        flash("config reloaded: " + r.changes.length + " change(s)");
        r.changes.forEach(function (c) {
          var li = document.createElement("li");
          li.textContent = c.key;
          list.appendChild(li);
        });
      } catch (e) { flash(e.message, true); }
      changed();
    });
  }

  // a reason for the audit trail, asked for before each action that needs one
  function reasonFor(what) {
    var r = window.prompt("Reason for " + what + " (goes into the audit trail)");
    if (r === null) { return null; }
    r = r.trim();
    if (!r) { flash("Give a reason: it goes into the audit trail.", true); return null; }
    return r;
  }

  document.addEventListener("click", async function (ev) {
    var b = ev.target.closest("button[data-end-outage], button[data-replay], button[data-ack-action]");
    if (!b) { return; }
    var id, reason;
    b.disabled = true;
    try {
      if (b.dataset.endOutage) {
        id = b.dataset.endOutage;
        await api("DELETE", "/v1/outages/" + encodeURIComponent(id));
        flash("outage ended: " + id);
      } else if (b.dataset.replay) {
        id = b.dataset.replay;
        reason = reasonFor("replaying " + id);
        if (reason === null) { b.disabled = false; return; }
        var r = await api("POST", "/v1/rejected-events/" + encodeURIComponent(id) + "/replay",
                          { reason: reason });
        if (r.outcome === "rejected") { flash(id + " still rejected: " + r.error.message, true); }
        else { flash(id + " " + r.outcome + ": " + r.filing_ids.join(", ")); }
      } else {
        id = b.dataset.filing;
        var action = b.dataset.ackAction;
        reason = reasonFor(action + " of " + id);
        if (reason === null) { b.disabled = false; return; }
        await api("POST", "/v1/filings/" + encodeURIComponent(id) + "/" + action, { reason: reason });
        flash(id + ": " + action + " done");
      }
    } catch (e) { flash((id ? id + ": " : "") + e.message, true); }
    b.disabled = false;
    changed();
  });

  var filterForm = document.getElementById("filter-form");
  if (filterForm) {
    var input = document.getElementById("filer");
    input.value = filer;
    filterForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var url = new URL(location.href);
      if (input.value.trim()) { url.searchParams.set("filer", input.value.trim()); }
      else { url.searchParams.delete("filer"); }
      location.assign(url.toString());
    });
  }

  if (panels) {
    if (panels.dataset.events) {
      connect();
    } else {  // a filing's page: its panel is polled
      refresh();
      startPolling();
    }
  }
})();
