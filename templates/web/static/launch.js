// The launch composer's live timeline check. The page works without this script (the
// "Check timeline" button posts the form and the server draws the whole page again); with
// it, the form is posted to the preview endpoint as the composer types, and the panel the
// server answers with replaces the old one. Nothing is built here: the server draws the
// picture and words the refusal, so both ways show exactly the same thing.
"use strict";

(function () {
  var form = document.getElementById("launch-form");
  if (!form) {
    return;
  }
  var panel = document.getElementById("launch-timeline");
  var status = document.getElementById("launch-checking");
  var field = document.getElementById("launch-customer-at");
  var url = form.getAttribute("data-preview");
  var WAIT_MS = 400;
  var timer = null;
  var inFlight = null;
  var asked = 0;
  // The words do not change the timeline: writing them asks the server nothing.
  var WORDS = ["title", "body", "customer_copy", "talking_points", "faq"];

  function check() {
    timer = null;
    if (inFlight) {
      inFlight.abort();
    }
    var mine = ++asked;
    inFlight = new AbortController();
    status.textContent = "Checking\u2026";
    fetch(url, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
      signal: inFlight.signal,
      headers: { "Accept": "text/html" }
    })
      .then(function (answer) {
        return answer.text();
      })
      .then(function (text) {
        if (mine !== asked) {
          return; // a newer check is on its way
        }
        panel.innerHTML = text;
        status.textContent = "";
      })
      .catch(function (error) {
        if (error.name !== "AbortError" && mine === asked) {
          status.textContent = "Could not check the timeline just now; use the button.";
        }
      });
  }

  function soon(event) {
    if (event && event.target && WORDS.indexOf(event.target.name) >= 0) {
      return;
    }
    if (timer) {
      clearTimeout(timer);
    }
    timer = setTimeout(check, WAIT_MS);
  }

  form.addEventListener("input", soon);
  form.addEventListener("change", soon);

  // The check button and "use it" stay on the page instead of reloading it.
  form.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) {
      return;
    }
    var use = target.closest("[data-use-customer-at]");
    if (use) {
      event.preventDefault();
      field.value = use.getAttribute("data-use-customer-at");
      field.focus();
      check();
      return;
    }
    if (target.closest("#launch-check")) {
      event.preventDefault();
      check();
    }
  });
})();
