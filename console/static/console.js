// syncd admin console: the only script. It polls a running job's JSON and
// reloads the page when the job ends, so the server renders the result.
// Everything else works without it (the job page also refreshes itself
// through <noscript>).
"use strict";
(function () {
  var el = document.getElementById("job");
  if (!el || el.dataset.state !== "running") return;
  var api = el.dataset.api;
  function tick() {
    fetch(api, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) {
        if (!j) return;
        var p = j.progress || {};
        var bar = document.getElementById("job-progress");
        bar.max = Math.max(p.total || 1, p.done || 0, 1);
        bar.value = p.done || 0;
        document.getElementById("job-count").textContent = (p.done || 0) + (p.total ? " of " + p.total : "");
        document.getElementById("job-state").textContent = j.state;
        if (j.state !== "running") { window.location.reload(); return; }
        setTimeout(tick, 1000);
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  setTimeout(tick, 500);
})();
