// skillsd editor: problems and preview as you type (progressive enhancement; the
// form works without this). After a pause in typing, the form is composed into the
// file by the server (POST /edit/preview: the same code as saving, the body rendered
// with raw HTML shown as text), then the file is checked under the repository's rules
// (POST /api/check), and the problems and the preview are shown beside the form.
(function () {
  "use strict";
  var form = document.getElementById("editor");
  if (!form || !window.fetch || !window.FormData || !window.URLSearchParams) { return; }
  var problems = document.getElementById("problems");
  var preview = document.getElementById("preview");
  var status = document.getElementById("check-status");
  var timer = null;
  var latest = 0;

  function text(tag, className, content) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    if (content !== undefined) { el.textContent = content; }
    return el;
  }

  function item(p) {
    var level = p.level || "error";
    var li = text("li", "problem " + level);
    li.setAttribute("data-field", p.field || "");
    li.setAttribute("data-level", level);
    var where = text("span", "where");
    if (typeof p.line === "number") { where.appendChild(document.createTextNode("line " + p.line)); }
    if (p.field) {
      if (typeof p.line === "number") { where.appendChild(document.createTextNode(" · ")); }
      where.appendChild(text("code", "", p.field));
    }
    li.appendChild(where);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(text("span", "message", p.message || ""));
    if (p.check) {
      li.appendChild(document.createTextNode(" "));
      li.appendChild(text("span", "muted check", "[" + p.check + "]"));
    }
    if (p.hint) { li.appendChild(text("div", "hint muted", "hint: " + p.hint)); }
    return li;
  }

  function show(list) {
    while (problems.firstChild) { problems.removeChild(problems.firstChild); }
    var errors = 0;
    list.forEach(function (p) {
      if (p.level !== "warning") { errors += 1; }
      problems.appendChild(item(p));
    });
    var warnings = list.length - errors;
    status.textContent = list.length === 0 ? "No problems." :
      errors + " error" + (errors === 1 ? "" : "s") + ", " +
      warnings + " warning" + (warnings === 1 ? "" : "s");
    form.setAttribute("data-checked", String(latest));
  }

  function json(response) {
    if (!response.ok) { throw new Error("HTTP " + response.status); }
    return response.json();
  }

  function run() {
    var mine = ++latest;
    status.textContent = "Checking…";
    fetch("/edit/preview", {
      method: "POST",
      credentials: "same-origin",
      body: new URLSearchParams(new FormData(form))
    }).then(json).then(function (composed) {
      if (mine !== latest) { return; }
      // Rendered by the server from Markdown, raw HTML shown as text.
      preview.innerHTML = composed.html;
      if (composed.problems && composed.problems.length) { show(composed.problems); return; }
      return fetch("/api/check", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ repo: composed.repo, path: composed.path, content: composed.content })
      }).then(json).then(function (checked) {
        if (mine !== latest) { return; }
        show(checked.problems || []);
      });
    }).catch(function () {
      if (mine === latest) { status.textContent = "Could not check just now; saving checks again."; }
    });
  }

  function later() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(run, 350);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
})();
