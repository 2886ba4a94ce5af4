// Gatehouse sign-in page: copy the command, and follow the sign-in until it is done.
(function () {
  "use strict";
  var id = document.currentScript.dataset.id;
  var status = document.getElementById("status");
  var copy = document.getElementById("copy");
  copy.addEventListener("click", function () {
    navigator.clipboard.writeText(copy.dataset.copy).then(function () { copy.textContent = "Copied"; });
  });
  function poll() {
    fetch("/signin/status?id=" + encodeURIComponent(id), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.message) { status.textContent = s.message; }
        if (s.next) { window.location.assign(s.next); return; }
        setTimeout(poll, 1500);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
