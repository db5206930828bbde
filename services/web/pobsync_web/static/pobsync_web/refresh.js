// Auto-refresh that an operator can switch off; the choice is kept in localStorage.
(function () {
  "use strict";
  var box = document.getElementById("auto-refresh");
  if (!box) { return; }
  var key = "pobsync.autorefresh";
  var seconds = parseInt(box.getAttribute("data-seconds"), 10) || 60;
  var timer = null;
  try { box.checked = window.localStorage.getItem(key) !== "off"; } catch (e) { /* private mode */ }
  function arm() {
    window.clearTimeout(timer);
    if (box.checked) { timer = window.setTimeout(function () { window.location.reload(); }, seconds * 1000); }
  }
  box.addEventListener("change", function () {
    try { window.localStorage.setItem(key, box.checked ? "on" : "off"); } catch (e) { /* ignore */ }
    arm();
  });
  arm();
}());
