// Tidings web client: small progressive enhancements. Every page works without this file.
// - live updates: a WebSocket to /live says which mailboxes changed; the folder list and the
//   message list are fetched again from the server and swapped in (selection kept);
// - confirmation before destructive buttons (data-confirm).
"use strict";

(function () {
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // -- confirmations -------------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // -- live updates --------------------------------------------------------------------------
  var view = document.getElementById("mail-view");
  if (!view || !csrfToken()) {
    return;
  }
  var mailboxId = view.getAttribute("data-mailbox");
  var fragmentUrl = view.getAttribute("data-fragment") || ("/mail/" + mailboxId + "/fragment");
  var refreshing = false;
  var again = false;

  // Selected rows as [name, value]: "uid" for a message, "thread" for a whole conversation.
  function selected() {
    var checked = document.querySelectorAll('#message-list .msg input[type="checkbox"]:checked');
    return Array.prototype.map.call(checked, function (box) { return [box.name, box.value]; });
  }

  function swap(id, template) {
    var current = document.getElementById(id);
    if (current && template) {
      current.replaceWith(template.content.cloneNode(true));
    }
  }

  function refresh() {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    fetch(fragmentUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || !response.ok) {
          throw new Error("fragment " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var keep = selected();
        swap("folders", doc.getElementById("fragment-folders"));
        if (view.getAttribute("data-fragment")) {
          swap("message-list", doc.getElementById("fragment-list"));
          var title = document.querySelector(".folder-title");
          var newTitle = doc.getElementById("fragment-title");
          if (title && newTitle) {
            title.replaceChildren(newTitle.content.cloneNode(true));
          }
          keep.forEach(function (pair) {
            var box = document.querySelector(
              '#message-list input[name="' + pair[0] + '"][value="' + pair[1] + '"]');
            if (box) { box.checked = true; }
          });
        }
        document.body.setAttribute("data-live-refreshed", String(Date.now()));
      })
      .catch(function () {})
      .then(function () {
        refreshing = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  // -- drag messages onto a folder ---------------------------------------------------------
  // The dragged row, or every selected row when the dragged one is selected, is moved with the
  // same action as the Move button (POST /mail/<mailbox>/act, CSRF token in the form).
  document.addEventListener("dragstart", function (event) {
    var row = event.target.closest && event.target.closest(".msg[data-uid]");
    if (!row) { return; }
    var box = row.querySelector('input[type="checkbox"]');
    if (!box) { return; }
    var pairs = box.checked ? selected() : [[box.name, box.value]];
    event.dataTransfer.setData("application/x-tidings-uids", JSON.stringify(pairs));
    event.dataTransfer.effectAllowed = "move";
  });
  function folderTarget(event) {
    var link = event.target.closest && event.target.closest("#folders a[data-mailbox]");
    var types = event.dataTransfer && event.dataTransfer.types;
    if (!link || !types || Array.prototype.indexOf.call(types, "application/x-tidings-uids") < 0) {
      return null;
    }
    return link.getAttribute("data-mailbox") === mailboxId ? null : link;
  }
  document.addEventListener("dragover", function (event) {
    var link = folderTarget(event);
    if (link) {
      event.preventDefault();
      link.classList.add("drop-target");
    }
  });
  document.addEventListener("dragleave", function (event) {
    var link = event.target.closest && event.target.closest("#folders a");
    if (link) { link.classList.remove("drop-target"); }
  });
  document.addEventListener("drop", function (event) {
    var link = folderTarget(event);
    if (!link) { return; }
    event.preventDefault();
    link.classList.remove("drop-target");
    var pairs;
    try {
      pairs = JSON.parse(event.dataTransfer.getData("application/x-tidings-uids"));
    } catch (e) {
      return;
    }
    var form = new FormData();
    form.append("csrf", csrfToken());
    form.append("op", "move");
    form.append("target", link.getAttribute("data-mailbox"));
    pairs.forEach(function (pair) {
      if (pair[0] === "uid" || pair[0] === "thread") { form.append(pair[0], pair[1]); }
    });
    fetch("/mail/" + mailboxId + "/act", {
      method: "POST",
      body: form,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrfToken() }
    }).then(refresh, refresh);
  });

  var delay = 1000;
  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + "/live");
    socket.addEventListener("open", function () {
      delay = 1000;
      document.body.setAttribute("data-live", "open");
    });
    socket.addEventListener("message", function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.type === "changes") {
        refresh();
      }
    });
    socket.addEventListener("close", function (event) {
      document.body.setAttribute("data-live", "closed");
      if (event.code === 4401 || event.code === 1008) {
        return; // logged out: the next click goes to the login page
      }
      window.setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    });
  }
  connect();
})();
