// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // Ask before destructive or costly forms (data-confirm), whether htmx or plain posts them.
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // Show the chosen start image before it is uploaded. A data: URL, not URL.createObjectURL:
  // the Content-Security-Policy allows images from data: but not from blob:.
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input.matches && input.matches("input[type=file][data-preview=image]")) {
      var target = document.querySelector("[data-preview-target=image]");
      var file = input.files && input.files[0];
      if (target && file && file.type.indexOf("image/") === 0) {
        var reader = new FileReader();
        reader.onload = function () {
          target.src = reader.result;
          target.hidden = false;
        };
        reader.readAsDataURL(file);
      }
    }
    if (input.matches && input.matches("select[data-aspect=scene]")) {
      matchModelsToAspect(input);
    }
    if (input.form && input.form.hasAttribute("data-autosubmit")) {
      input.form.requestSubmit();
    }
  });

  // Only the models that make clips of the chosen aspect stay selectable (the server checks too).
  function matchModelsToAspect(aspectSelect) {
    var models = document.querySelector("select[data-models=scene]");
    if (!models || !aspectSelect.selectedOptions.length) return;
    var wanted = aspectSelect.selectedOptions[0].text;
    var groups = models.querySelectorAll("optgroup");
    groups.forEach(function (group) { group.disabled = group.label !== wanted; });
    var current = models.selectedOptions[0];
    if (current && current.parentElement.disabled) {
      var first = models.querySelector("optgroup:not([disabled]) option");
      if (first) models.value = first.value;
    }
  }

  // Tick the elapsed time of takes in flight between polls.
  function formatElapsed(seconds) {
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + String(seconds % 60).padStart(2, "0") + " s";
    return Math.floor(minutes / 60) + " h " + String(minutes % 60).padStart(2, "0") + " min";
  }
  setInterval(function () {
    document.querySelectorAll("time[data-elapsed-since]").forEach(function (node) {
      var started = Date.parse(node.getAttribute("data-elapsed-since"));
      if (!isNaN(started)) {
        node.textContent = formatElapsed(Math.max(0, Math.floor((Date.now() - started) / 1000)));
      }
    });
  }, 1000);

  // The compare page: its takes start, pause and rewind together.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-compare]");
    if (!button) return;
    var videos = document.querySelectorAll("video[data-compare-clip]");
    var action = button.getAttribute("data-compare");
    videos.forEach(function (video) {
      if (action === "play") {
        video.currentTime = 0;
        video.muted = true;
        video.play();
      } else {
        video.pause();
      }
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    var aspect = document.querySelector("select[data-aspect=scene]");
    if (aspect) matchModelsToAspect(aspect);
  });
})();
