// edi-gateway records pages (issue 20): loads the search results or a record's panel with the
// token dashboard.js keeps in sessionStorage (its helpers, window.edigw), and posts a
// restore with its reason. Loaded after dashboard.js (base.html's scripts block).
(function () {
  "use strict";
  var KEY = window.edigw.KEY, headers = window.edigw.headers, flash = window.edigw.flash;
  var authOn = document.body.dataset.auth === "token";
  var box = document.getElementById("records-results") || document.getElementById("record");
  if (!box) { return; }

  function say(text) {
    box.innerHTML = "";
    var p = document.createElement("p");
    p.className = "bad";
    p.textContent = text;
    box.appendChild(p);
  }

  // the search's query rides on the page's own address (?reference=…&cursor=…)
  async function load() {
    if (authOn && !sessionStorage.getItem(KEY)) { return; }
    var src = box.dataset.src + (box.id === "records-results" ? location.search : "");
    try {
      var r = await fetch(src, { headers: headers() });
      if (r.ok) { box.innerHTML = await r.text(); return; }
      var err = null;
      try { err = await r.json(); } catch (e) { err = null; }
      var msg = err && err.error ? err.error.message : "HTTP " + r.status;
      say(msg + (r.status === 401 || r.status === 403 ? " — enter a token with scope read above." : ""));
    } catch (e) {
      say("offline: " + e.message);
    }
  }

  var tokenForm = document.getElementById("token-form");
  if (tokenForm) {  // dashboard.js stores the token on submit; load after it has
    tokenForm.addEventListener("submit", function () { setTimeout(load, 0); });
  }

  document.addEventListener("submit", async function (ev) {
    var form = ev.target.closest("#restore-form");
    if (!form) { return; }
    ev.preventDefault();
    var id = form.dataset.record, reason = form.reason.value.trim();
    if (!reason) { flash("Give a reason: it goes into the audit trail.", true); return; }
    var button = form.querySelector("button");
    button.disabled = true;
    try {
      var r = await fetch("/v1/records/" + encodeURIComponent(id) + "/restore", {
        method: "POST",
        headers: headers({ "Content-Type": "application/json" }),
        body: JSON.stringify({ reason: reason })
      });
      var data = null;
      try { data = await r.json(); } catch (e) { data = null; }
      if (!r.ok) { throw new Error(data && data.error ? data.error.message : "HTTP " + r.status); }
      flash(id + " restored from " + data.restored_from);
      await load();
    } catch (e) {
      flash(id + ": " + e.message, true);
      button.disabled = false;
    }
  });

  if (authOn) { load(); }
})();
