// The compose page's live previews and audience search. The page works without this
// script: it only asks our own server for what the "Preview" button would show.
(function () {
  "use strict";
  var form = document.getElementById("compose-form");
  var panel = document.getElementById("previews");
  if (!form || !panel) {
    return;
  }
  var status = document.getElementById("preview-status");
  var headcount = document.getElementById("headcount");
  var timer = null;
  var asked = 0;

  // The "Wording" choice of the preview follows the wordings written so far.
  function syncWordingChoice() {
    var choice = document.getElementById("preview_wording");
    var boxes = form.querySelectorAll("textarea[name=wording]");
    if (!choice) {
      return;
    }
    var kept = choice.value;
    var count = 1;
    for (var i = 1; i < boxes.length; i++) {
      if (boxes[i].value.trim()) {
        count++;
      }
    }
    choice.textContent = "";
    for (var n = 0; n < count; n++) {
      var option = document.createElement("option");
      option.value = String(n);
      option.textContent = n === 0 ? "The body" : "Variant " + n;
      choice.appendChild(option);
    }
    choice.value = Number(kept) < count ? kept : "0";
  }

  // Another wording box, without a round trip (the button re-renders the page without us).
  var add = document.getElementById("add-wording");
  if (add) {
    add.addEventListener("click", function (event) {
      var boxes = form.querySelectorAll("textarea[name=wording]");
      var last = boxes[boxes.length - 1];
      if (boxes.length >= Number(add.getAttribute("data-max"))) {
        return;
      }
      event.preventDefault();
      var n = boxes.length;
      var block = document.createElement("div");
      block.className = "wording field";
      var label = document.createElement("label");
      label.htmlFor = "wording-" + n;
      label.textContent = "Variant " + n;
      var box = document.createElement("textarea");
      box.id = "wording-" + n;
      box.name = "wording";
      block.appendChild(label);
      block.appendChild(box);
      last.closest(".wording").after(block);
      box.focus();
    });
  }

  // Whom the preview may be for follows the audience chosen so far.
  function syncRecipients(people, chosen) {
    var choice = document.getElementById("preview_person");
    if (!choice) {
      return;
    }
    var now = Array.prototype.map.call(choice.options, function (o) { return o.value; });
    var wanted = people.map(function (p) { return p[0]; });
    if (now.join("\n") !== wanted.join("\n")) {
      choice.textContent = "";
      people.forEach(function (p) {
        var option = document.createElement("option");
        option.value = p[0];
        option.textContent = p[1] + " (" + p[0] + ")";
        choice.appendChild(option);
      });
    }
    choice.value = chosen;
  }

  function refresh() {
    syncWordingChoice();
    var data = new FormData(form);
    data.set("op", "preview");
    var mine = ++asked;
    status.textContent = "Updating…";
    fetch("/dashboard/compose/preview", {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("the server answered " + response.status);
      }
      return response.json();
    }).then(function (answer) {
      if (mine !== asked) {
        return; // a newer preview is on its way
      }
      panel.innerHTML = answer.previews;
      syncRecipients(answer.recipients, answer.recipient);
      headcount.innerHTML = answer.headcount;
      status.textContent = answer.problems ? "" : "Up to date";
    }).catch(function (error) {
      if (mine === asked) {
        status.textContent = "Preview not updated (" + error.message + "): use the Preview button.";
      }
    });
  }

  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 350);
  }

  // Show only the parts of the cadence builder that the chosen preset uses.
  var preset = document.getElementById("preset");
  function showPreset() {
    var parts = form.querySelectorAll(".preset-part");
    for (var i = 0; i < parts.length; i++) {
      var wanted = parts[i].getAttribute("data-presets").split(" ");
      parts[i].hidden = wanted.indexOf(preset.value) < 0;
    }
  }
  if (preset) {
    preset.addEventListener("change", showPreset);
    showPreset();
  }

  ["preview_person", "preview_wording"].forEach(function (id) {
    var outside = document.getElementById(id);
    if (outside) {
      outside.addEventListener("change", later);
    }
  });

  form.addEventListener("input", function (event) {
    if (event.target.id !== "audience-search") {
      later();
    }
  });
  form.addEventListener("change", function (event) {
    if (event.target.id !== "audience-search") {
      later();
    }
  });

  // Audience search: people and teams the viewer may target, added with one click.
  var search = document.getElementById("audience-search");
  var results = document.getElementById("search-results");
  var searchTimer = null;

  function addPerson(email) {
    var people = document.getElementById("people");
    var names = people.value.split(/[\s,;]+/).filter(Boolean);
    if (names.indexOf(email) < 0) {
      names.push(email);
    }
    people.value = names.join("\n");
    later();
  }

  function addTeam(path) {
    var boxes = form.querySelectorAll("input[name=team]");
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].value === path) {
        boxes[i].checked = true;
      }
    }
    later();
  }

  function choice(label, onPick) {
    var item = document.createElement("li");
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.addEventListener("click", function () {
      onPick();
      item.remove();
    });
    item.appendChild(button);
    return item;
  }

  function find() {
    var text = search.value.trim();
    results.textContent = "";
    if (!text) {
      return;
    }
    fetch(search.getAttribute("data-search") + "?q=" + encodeURIComponent(text), {
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.ok ? response.json() : { people: [], teams: [] };
    }).then(function (found) {
      if (search.value.trim() !== text) {
        return;
      }
      results.textContent = "";
      found.teams.forEach(function (path) {
        results.appendChild(choice("Add team " + path, function () { addTeam(path); }));
      });
      found.people.forEach(function (person) {
        results.appendChild(choice("Add " + person.name + " (" + person.email + ")",
          function () { addPerson(person.email); }));
      });
      if (!found.teams.length && !found.people.length) {
        var none = document.createElement("li");
        none.className = "muted small";
        none.textContent = "Nobody you may send to matches.";
        results.appendChild(none);
      }
    });
  }

  if (search && results) {
    search.addEventListener("input", function () {
      window.clearTimeout(searchTimer);
      searchTimer = window.setTimeout(find, 250);
    });
    search.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault(); // Enter searches; it does not submit the message
        find();
      }
    });
  }
}());
