// Contacts, calendar and journal pages: small progressive enhancements. Every page works without
// this file (times are then shown in UTC, and the time fields of all-day events stay visible).
// - the browser's time zone goes into the tidings_tz cookie so the server shows local times;
// - the event form hides the times of an all-day event;
// - reminders in the calendar page light up when they fire.
"use strict";

(function () {
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
  var match = document.cookie.match(/(?:^|;\s*)tidings_tz=([^;]*)/);
  var current = match ? decodeURIComponent(match[1]) : "";
  if (zone && zone !== current) {
    document.cookie = "tidings_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
    if (document.getElementById("calendar-view") && !/[?&]tz=/.test(location.search)) {
      location.reload();
      return;
    }
  }

  var allDay = document.getElementById("all-day");
  if (allDay) {
    var toggle = function () {
      document.querySelectorAll("#event-form .time-field").forEach(function (field) {
        field.hidden = allDay.checked;
      });
    };
    allDay.addEventListener("change", toggle);
    toggle();
  }

  var reminders = document.querySelectorAll(".reminder[data-fires]");
  reminders.forEach(function (item) {
    var fire = function () {
      item.classList.add("due");
      item.setAttribute("role", "alert");
    };
    var wait = parseInt(item.getAttribute("data-fires"), 10) - Date.now();
    if (wait <= 0) {
      fire();
    } else if (wait < 2147483647) {
      window.setTimeout(fire, wait);
    }
  });
})();
