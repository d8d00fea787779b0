// skillsd status pages: live updates (progressive enhancement; the pages work
// without this). Listens to /events and applies each cache change to the page: the
// status bar's counts, and the sync badge of every changed skill shown.
(function () {
  "use strict";
  if (!window.EventSource) { return; }
  var counts = {
    synced: "count-synced", total: "count-total", pending: "count-pending",
    failed: "count-failed", unknown: "count-unknown",
    search_pending: "count-search-pending", with_warnings: "count-warnings"
  };
  var source = new EventSource("/events");
  source.addEventListener("cache", function (e) {
    var change;
    try { change = JSON.parse(e.data); } catch (_) { return; }
    var health = change.health || {};
    Object.keys(counts).forEach(function (key) {
      var el = document.getElementById(counts[key]);
      if (el && health[key] !== undefined) { el.textContent = String(health[key]); }
    });
    (change.slugs || []).forEach(function (slug) {
      var rows = document.querySelectorAll("tr[data-slug]");
      for (var i = 0; i < rows.length; i++) {
        if (rows[i].getAttribute("data-slug") !== slug) { continue; }
        var badge = rows[i].querySelector(".sync");
        if (badge) { badge.textContent = "synced"; badge.className = "badge ok sync"; }
      }
    });
    var note = document.getElementById("live");
    if (note) { note.textContent = "updated " + new Date().toLocaleTimeString(); }
  });
})();
