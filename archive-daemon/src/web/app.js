// The community server's one script: live updates of a room over server-sent events
// (resumed after a dropped connection with Last-Event-ID), sending without a reload,
// uploads in resumable parts, and local times. Every page works without it.
(function () {
  "use strict";
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      t.textContent = t.classList.contains("date")
        ? d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" })
        : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    });
  }
  localTimes(document);
  // Files: each file goes in 4 MiB parts; a part that fails is sent again from where the
  // server says the upload stands, so a dropped connection costs one part, not the file.
  var up = document.getElementById("upload");
  if (up && window.fetch) up.addEventListener("submit", function (e) {
    e.preventDefault();
    var files = Array.prototype.slice.call(up.elements.file.files), d = up.dataset;
    var bar = up.querySelector("progress"), status = up.querySelector(".status");
    var button = up.querySelector("button"), PART = 4 << 20;
    var h = { "X-CSRF-Token": d.csrf };
    function call(method, path, body, json) {
      var headers = Object.assign({}, h);
      if (json) headers["Content-Type"] = "application/json";
      return fetch("/api/files/" + path, { method: method, credentials: "same-origin", headers: headers, body: body })
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (j) {
            if (!r.ok) { var err = new Error(j.error || r.statusText); err.status = r.status; throw err; }
            return j;
          });
        });
    }
    function send(file, u, tries) {
      if (u.received >= u.size) return call("POST", "uploads/" + u.id + "/finish");
      bar.value = u.received / Math.max(u.size, 1);
      var part = file.slice(u.received, Math.min(u.received + PART, u.size));
      return call("PUT", "uploads/" + u.id + "?offset=" + u.received, part)
        .then(function (next) { return send(file, next, 0); }, function (err) {
          if ((err.status && err.status !== 409) || tries >= 5) throw err;
          return new Promise(function (ok) { setTimeout(ok, 1000 * (tries + 1)); })
            .then(function () { return call("GET", "uploads/" + u.id); })
            .then(function (now) { return send(file, now, tries + 1); });
        });
    }
    button.disabled = true; bar.hidden = false;
    files.reduce(function (done, file) {
      return done.then(function () {
        status.textContent = file.name;
        var path = (d.folder ? d.folder + "/" : "") + file.name.replace(/[\\/]/g, "_");
        return call("POST", d.share + "/uploads", JSON.stringify({ path: path, size: file.size }), true)
          .then(function (u) { return send(file, u, 0); });
      });
    }, Promise.resolve()).then(function () { location.reload(); }, function (err) {
      status.textContent = err.message; button.disabled = false;
    });
  });
  var room = document.querySelector("[data-room]");
  if (!room || !window.EventSource || !window.fetch) return;
  var id = room.dataset.room, csrf = room.dataset.csrf;
  var list = document.getElementById("messages");
  var live = document.getElementById("live");
  var api = "/api/rooms/" + id;
  function post(path, body) {
    return fetch(api + path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    });
  }
  function show(d) {
    var old = document.getElementById("m-" + d.id);
    if (!d.html) { if (old) old.remove(); return; }
    var t = document.createElement("template");
    t.innerHTML = d.html;
    var li = t.content.firstElementChild;
    li.querySelectorAll("input[name=csrf]").forEach(function (i) { i.value = csrf; });
    localTimes(li);
    if (old) { old.replaceWith(li); return; }
    // Ids begin with the time: the room's order is their order.
    var next = null;
    for (var c = list.lastElementChild; c && c.dataset.id > d.id; c = c.previousElementSibling) next = c;
    list.insertBefore(li, next);
    var empty = document.getElementById("empty");
    if (empty) empty.remove();
    if (!next) {
      li.scrollIntoView({ block: "end" });
      if (document.visibilityState === "visible") post("/read", { message: d.id });
    }
  }
  var feed = new EventSource(api + "/events?from=" + encodeURIComponent(room.dataset.resume));
  feed.addEventListener("message", function (e) { show(JSON.parse(e.data)); });
  feed.addEventListener("reload", function () { location.reload(); });
  feed.onopen = function () { live.hidden = true; };
  feed.onerror = function () { live.hidden = false; };
  var form = document.getElementById("composer");
  form.addEventListener("submit", function (e) {
    // With files the form goes as it is (multipart); the page then reloads.
    if (form.elements.file && form.elements.file.files.length) return;
    e.preventDefault();
    var text = form.elements.text, reply = form.elements.reply_to;
    var button = form.querySelector("button");
    button.disabled = true;
    post("/messages", { text: text.value, reply_to: reply.value || null }).then(function (r) {
      if (r.ok) { text.value = ""; reply.value = ""; return; }
      return r.json().then(function (j) { alert(j.error); });
    }).catch(function () { form.submit(); }).finally(function () { button.disabled = false; text.focus(); });
  });
  form.elements.text.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  if (list.lastElementChild) list.lastElementChild.scrollIntoView({ block: "end" });
})();
