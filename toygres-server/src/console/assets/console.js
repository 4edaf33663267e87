// The Toygres console's only script (served from /console/assets/, never inline: the
// Content-Security-Policy allows scripts of this origin only). Pages work without it; it adds:
// - live regions: an element with data-live="/console/live/..." is refreshed from that URL every
//   few seconds while the page is visible, until the fragment says data-final;
// - copy buttons: <button data-copy="ID"> copies the text of element ID;
// - typed confirmations: <form data-confirm="NAME"> enables its submit button only once the
//   field named "confirm" holds NAME (the server checks it again);
// - forms are sent once: their submit button is disabled while the request runs.
(function () {
  "use strict";

  var EVERY_MS = 2000;

  function refresh(region) {
    var source = region.getAttribute("data-live");
    if (!source || region.getAttribute("data-busy")) {
      return;
    }
    region.setAttribute("data-busy", "1");
    fetch(source, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) {
          // Signed out (or the session ended): stop, and say so once.
          region.removeAttribute("data-live");
          var note = document.getElementById("live-note");
          if (note) {
            note.hidden = false;
          }
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) {
          region.innerHTML = html;
          if (region.querySelector("[data-final]")) {
            region.removeAttribute("data-live");
          }
        }
      })
      .catch(function () {
        // The server is unreachable for a moment: try again at the next tick.
      })
      .then(function () {
        region.removeAttribute("data-busy");
      });
  }

  function tick() {
    if (document.hidden) {
      return;
    }
    var regions = document.querySelectorAll("[data-live]");
    for (var i = 0; i < regions.length; i++) {
      refresh(regions[i]);
    }
  }

  function copied(button, ok) {
    var label = button.textContent;
    button.textContent = ok ? "Copied" : "Select and copy";
    button.setAttribute("data-copied", ok ? "yes" : "no");
    setTimeout(function () {
      button.textContent = label;
    }, 1500);
  }

  function copy(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) {
      return;
    }
    var text = target.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { copied(button, true); },
        function () { copied(button, false); }
      );
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(target);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    copied(button, document.execCommand && document.execCommand("copy"));
  }

  function confirmState(form) {
    var field = form.querySelector("[name=confirm]");
    var button = form.querySelector("[type=submit]");
    if (field && button) {
      button.disabled = field.value !== form.getAttribute("data-confirm");
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (button) {
      event.preventDefault();
      copy(button);
    }
  });

  document.addEventListener("input", function (event) {
    var form = event.target.form;
    if (form && form.hasAttribute("data-confirm")) {
      confirmState(form);
    }
  });

  document.addEventListener("submit", function (event) {
    var button = event.target.querySelector("[type=submit]");
    if (button) {
      // After the form's data is taken: disabling it first would drop nothing we need, but
      // waiting a tick keeps the browser's own submission untouched.
      setTimeout(function () { button.disabled = true; }, 0);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var forms = document.querySelectorAll("form[data-confirm]");
    for (var i = 0; i < forms.length; i++) {
      confirmState(forms[i]);
    }
    setInterval(tick, EVERY_MS);
  });
})();
