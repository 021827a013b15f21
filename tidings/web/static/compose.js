// Compose: conveniences over a form that works without them.
// - drafts: the form is saved to Drafts (op=save, JSON) a few seconds after each change;
// - attachments: files chosen are uploaded at once with a progress bar (XMLHttpRequest, so the
//   upload's progress can be shown), into the draft;
// - recipients: suggestions from contacts, groups and the domain's accounts while typing;
// - send later: the browser's time zone goes with the chosen time.
"use strict";

(function () {
  var form = document.getElementById("compose");
  if (!form) {
    return;
  }
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var draftField = form.querySelector('input[name="draft"]');
  var saveStatus = document.getElementById("save-status");
  var maxSize = parseInt(form.getAttribute("data-max-size"), 10) || 0;
  form.querySelector('input[name="tz_offset"]').value = String(-new Date().getTimezoneOffset());

  // -- saving ---------------------------------------------------------------------------------
  var timer = null;
  var saving = false;
  var dirty = false;

  function fields(op) {
    var data = new FormData(form);
    data.delete("files");
    data.set("op", op);
    return data;
  }

  function post(data, onProgress) {
    return new Promise(function (resolve, reject) {
      var request = new XMLHttpRequest();
      request.open("POST", "/mail/compose");
      request.setRequestHeader("X-CSRF-Token", csrf);
      request.setRequestHeader("Accept", "application/json");
      if (onProgress) {
        request.upload.addEventListener("progress", onProgress);
      }
      request.onload = function () {
        var body = null;
        try { body = JSON.parse(request.responseText); } catch (e) { body = null; }
        if (request.status >= 200 && request.status < 300 && body) {
          resolve(body);
        } else {
          reject(new Error((body && body.error) || ("the server answered " + request.status)));
        }
      };
      request.onerror = function () { reject(new Error("no connection")); };
      request.send(data);
    });
  }

  function saved(body) {
    if (body.draft) {
      draftField.value = String(body.draft);
      history.replaceState(null, "", "/mail/compose?draft=" + body.draft);
    }
    if (body.attachments) {
      showAttachments(body.attachments);
    }
    saveStatus.textContent = "Draft saved " + new Date().toLocaleTimeString();
  }

  function save() {
    timer = null;
    if (saving) {
      dirty = true;
      return Promise.resolve();
    }
    saving = true;
    dirty = false;
    return post(fields("save")).then(saved, function (error) {
      saveStatus.textContent = "Not saved: " + error.message;
    }).then(function () {
      saving = false;
      if (dirty) {
        schedule();
      }
    });
  }

  function schedule() {
    if (timer) {
      clearTimeout(timer);
    }
    timer = setTimeout(save, 2000);
  }

  form.addEventListener("input", function (event) {
    if (event.target.type !== "file") {
      schedule();
    }
  });

  // -- attachments ----------------------------------------------------------------------------
  var list = document.getElementById("attachment-list");
  var progress = document.getElementById("upload-progress");
  var uploadStatus = document.getElementById("upload-status");
  var files = document.getElementById("c-files");
  form.querySelector(".attach-button").hidden = true;

  function size(bytes) {
    if (bytes < 1024) { return bytes + " B"; }
    if (bytes < 1048576) { return (bytes / 1024).toFixed(0) + " KB"; }
    return (bytes / 1048576).toFixed(1) + " MB";
  }

  function showAttachments(items) {
    list.textContent = "";
    items.forEach(function (item) {
      var li = document.createElement("li");
      var name = document.createElement("span");
      name.className = "name";
      name.textContent = item.name;
      var meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = " " + size(item.size) + " ";
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link";
      remove.textContent = "Remove";
      remove.addEventListener("click", function () {
        post(fields("remove-" + item.index)).then(saved, function (error) {
          uploadStatus.textContent = error.message;
        });
      });
      li.append(name, meta, remove);
      list.appendChild(li);
    });
  }

  files.addEventListener("change", function () {
    var data = fields("attach");
    var total = 0;
    Array.prototype.forEach.call(files.files, function (file) {
      data.append("files", file);
      total += file.size;
    });
    if (maxSize && total > maxSize) {
      uploadStatus.textContent = "Too large: at most " + size(maxSize) + " in one message.";
      files.value = "";
      return;
    }
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    progress.hidden = false;
    progress.value = 0;
    uploadStatus.textContent = "Uploading " + size(total) + "…";
    saving = true;
    post(data, function (event) {
      if (event.lengthComputable) {
        progress.value = Math.round(100 * event.loaded / event.total);
      }
    }).then(function (body) {
      saved(body);
      uploadStatus.textContent = "Uploaded.";
    }, function (error) {
      uploadStatus.textContent = "Upload failed: " + error.message;
    }).then(function () {
      saving = false;
      progress.hidden = true;
      files.value = "";
    });
  });

  // -- recipients -----------------------------------------------------------------------------
  var box = document.getElementById("suggestions");
  var target = null;
  var asked = 0;

  function lastTerm(value) {
    var parts = value.split(",");
    return parts[parts.length - 1].trim();
  }

  function choose(value) {
    var parts = target.value.split(",");
    parts[parts.length - 1] = " " + value;
    target.value = parts.join(",").replace(/^\s+/, "") + ", ";
    box.hidden = true;
    target.focus();
    schedule();
  }

  function suggest(input) {
    var term = lastTerm(input.value);
    target = input;
    if (term.length < 2) {
      box.hidden = true;
      return;
    }
    var ticket = ++asked;
    fetch("/mail/compose/suggest?q=" + encodeURIComponent(term), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : []; })
      .then(function (items) {
        if (ticket !== asked) {
          return;
        }
        box.textContent = "";
        items.forEach(function (item) {
          var li = document.createElement("li");
          li.setAttribute("role", "option");
          li.tabIndex = 0;
          li.textContent = item.name ? item.name + " <" + (item.email || item.value) + ">" : item.value;
          li.addEventListener("mousedown", function (event) {
            event.preventDefault();
            choose(item.value);
          });
          li.addEventListener("keydown", function (event) {
            if (event.key === "Enter") {
              event.preventDefault();
              choose(item.value);
            }
          });
          box.appendChild(li);
        });
        var rect = input.getBoundingClientRect();
        box.style.setProperty("--top", (rect.bottom + window.scrollY) + "px");
        box.style.setProperty("--left", (rect.left + window.scrollX) + "px");
        box.style.setProperty("--width", rect.width + "px");
        box.hidden = items.length === 0;
      });
  }

  Array.prototype.forEach.call(form.querySelectorAll("input.recipients"), function (input) {
    input.addEventListener("input", function () { suggest(input); });
    input.addEventListener("blur", function () { setTimeout(function () { box.hidden = true; }, 150); });
  });
})();
