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
    if (input.matches && input.matches("select[data-aspect=scene], select[data-mode=scene]")) {
      followMode();
    }
    if (input.form && input.form.hasAttribute("data-autosubmit")) {
      input.form.requestSubmit();
    }
  });

  // The scene form follows its mode: only the image fields the mode uses are shown, and only
  // the models that make the chosen mode and aspect stay selectable (the server checks both;
  // without JavaScript every field shows and the list is grouped by mode and aspect).
  function followMode() {
    var modeSelect = document.querySelector("select[data-mode=scene]");
    var aspectSelect = document.querySelector("select[data-aspect=scene]");
    var models = document.querySelector("select[data-models=scene]");
    var mode = modeSelect ? modeSelect.value : "image";
    document.querySelectorAll("[data-modes]").forEach(function (field) {
      field.hidden = field.getAttribute("data-modes").split(" ").indexOf(mode) === -1;
    });
    if (!models || !aspectSelect) return;
    var aspect = aspectSelect.value;
    models.querySelectorAll("option").forEach(function (option) {
      var fits = option.getAttribute("data-mode") === mode && option.getAttribute("data-aspect") === aspect;
      option.disabled = !fits;
      option.hidden = !fits;
    });
    models.querySelectorAll("optgroup").forEach(function (group) {
      var open = group.querySelector("option:not([disabled])") !== null;
      group.disabled = !open;
      group.hidden = !open;
    });
    var current = models.selectedOptions[0];
    if (current && current.disabled) {
      // A model that does both (Vertex AI's) stays chosen; otherwise the first that fits.
      var same = models.querySelector('option:not([disabled])[value="' + current.value + '"]');
      var first = same || models.querySelector("option:not([disabled])");
      if (first) first.selected = true;
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

  // --- Reordering the storyboard ---------------------------------------------------------
  // A drag (SortableJS), an arrow key on a card's handle, or its ↑/↓ button sends the whole new
  // order as one htmx request; the storyboard comes back in place and focus returns to the
  // control that moved the card. Without JavaScript, ↑/↓ post their own forms.

  var pendingFocus = null; // {card: id, control: "handle" | "up" | "down"}

  function storyboard() { return document.getElementById("scenes"); }

  // Where the new order goes: only an editor's page says (the storyboard itself is swapped).
  function orderUrl() {
    var node = document.getElementById("scene-order");
    return node && node.getAttribute("data-url");
  }

  function cards(board) { return Array.prototype.slice.call(board.querySelectorAll(":scope > article.card")); }

  function sendOrder(board, card, control) {
    var url = orderUrl();
    if (!url || !window.htmx) return;
    pendingFocus = { card: card.id, control: control };
    var values = { scene: cards(board).map(function (c) { return c.id.replace(/^scene-/, ""); }) };
    window.htmx.ajax("POST", url, { source: board, target: "#scenes", swap: "outerHTML", values: values });
  }

  function moveCard(card, step, control) {
    var board = card.parentElement;
    var list = cards(board);
    var index = list.indexOf(card);
    var target = index + step;
    if (target < 0 || target >= list.length) return;
    if (step < 0) board.insertBefore(card, list[target]);
    else board.insertBefore(card, list[target].nextSibling);
    syncMoveButtons(board);
    focusControl(card, control);
    sendOrder(board, card, control);
  }

  function focusControl(card, control) {
    var wanted = control === "handle" ? "[data-move-handle]" : "[data-move=" + control + "]";
    var node = card.querySelector(wanted);
    // ↑ on a card that became first is disabled: its neighbour ↓ takes the focus.
    if (node && node.disabled) node = card.querySelector("[data-move]:not([disabled])") || card.querySelector("[data-move-handle]");
    if (node) node.focus();
  }

  // The first card cannot go up, the last cannot go down (a card swapped in alone is not
  // rendered knowing where it stands).
  function syncMoveButtons(board) {
    var list = cards(board);
    list.forEach(function (card, index) {
      var up = card.querySelector("[data-move=up]");
      var down = card.querySelector("[data-move=down]");
      if (up) up.disabled = index === 0;
      if (down) down.disabled = index === list.length - 1;
    });
  }

  function setUpStoryboard(board) {
    if (!board || !orderUrl()) return;
    board.querySelectorAll("[data-move-handle]").forEach(function (handle) { handle.hidden = false; });
    syncMoveButtons(board);
    if (window.Sortable && !board.__sortable) {
      board.__sortable = window.Sortable.create(board, {
        handle: "[data-move-handle]",
        draggable: "article.card",
        animation: 150,
        // Mouse and touch events rather than the browser's own drag and drop: the same on
        // every device, and the moved card keeps its focusable handle.
        forceFallback: true,
        onEnd: function (event) {
          if (event.oldIndex === event.newIndex) return;
          syncMoveButtons(board);
          focusControl(event.item, "handle");
          sendOrder(board, event.item, "handle");
        },
      });
    }
  }

  document.addEventListener("keydown", function (event) {
    var handle = event.target.closest && event.target.closest("[data-move-handle]");
    if (!handle || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
    event.preventDefault();
    moveCard(handle.closest("article.card"), event.key === "ArrowUp" ? -1 : 1, "handle");
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-move]");
    var board = storyboard();
    if (!button || !board || !orderUrl() || !window.htmx) return;
    event.preventDefault();
    if (button.disabled) return;
    moveCard(button.closest("article.card"), button.getAttribute("data-move") === "up" ? -1 : 1, button.getAttribute("data-move"));
  }, true);

  // Whatever swapped the storyboard or a card (this page's own move, a teammate's change
  // brought by the poll), set it up again and give focus back where it was.
  document.addEventListener("htmx:beforeSwap", rememberFocus);
  document.addEventListener("htmx:oobBeforeSwap", rememberFocus);
  function rememberFocus() {
    if (pendingFocus) return;
    var active = document.activeElement;
    var card = active && active.closest && active.closest("#scenes article.card");
    if (!card) return;
    var control = active.hasAttribute("data-move-handle") ? "handle" : active.getAttribute("data-move");
    if (control) pendingFocus = { card: card.id, control: control };
  }
  document.addEventListener("htmx:afterSettle", function () {
    var board = storyboard();
    if (!board) return;
    setUpStoryboard(board);
    if (pendingFocus) {
      var card = document.getElementById(pendingFocus.card);
      var focus = pendingFocus;
      pendingFocus = null;
      if (card && !card.contains(document.activeElement)) focusControl(card, focus.control);
    }
  });

  // --- Gallery review: the filtered clips of this page, one at a time, full screen ----------

  var review = { dialog: null, clips: [], index: 0 };

  // play() returns a promise that rejects when a pause or a new source interrupts it; that is
  // the user changing their mind, not a fault, so only the interruption is swallowed.
  function play(video) {
    var started = video.play();
    if (started && started.catch) {
      started.catch(function (error) { if (error.name !== "AbortError") throw error; });
    }
  }

  function showClip(index) {
    var clips = review.clips;
    if (!clips.length) return;
    review.index = (index + clips.length) % clips.length;
    var item = clips[review.index];
    var video = document.getElementById("review-video");
    var label = item.getAttribute("data-label");
    video.src = item.getAttribute("data-video");
    if (item.getAttribute("data-poster")) video.poster = item.getAttribute("data-poster");
    else video.removeAttribute("poster");
    video.className = "review__video review__video--" + item.getAttribute("data-aspect");
    video.setAttribute("aria-label", label);
    document.getElementById("review-label").textContent =
      label + " (" + (review.index + 1) + " of " + clips.length + ")";
  }

  function openReview() {
    review.dialog = document.getElementById("review");
    review.clips = Array.prototype.slice.call(document.querySelectorAll("[data-review-clip]"));
    if (!review.dialog || !review.clips.length) return;
    review.dialog.showModal();
    showClip(0);
    review.dialog.querySelector("[data-review-close]").focus();
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target : null;
    if (!target) return;
    if (target.closest("[data-review-open]")) openReview();
    else if (target.closest("[data-review-next]")) showClip(review.index + 1);
    else if (target.closest("[data-review-prev]")) showClip(review.index - 1);
    else if (target.closest("[data-review-close]")) review.dialog.close();
  });

  document.addEventListener("keydown", function (event) {
    if (!review.dialog || !review.dialog.open) return;
    var video = document.getElementById("review-video");
    if (event.key === "ArrowRight") showClip(review.index + 1);
    else if (event.key === "ArrowLeft") showClip(review.index - 1);
    else if (event.key === " " && event.target.tagName !== "VIDEO") {
      if (video.paused) play(video); else video.pause();
    } else return; // Escape closes the dialog by itself
    event.preventDefault();
  });

  document.addEventListener("close", function (event) {
    if (event.target.id !== "review") return;
    var video = document.getElementById("review-video");
    video.pause();
    var opener = document.querySelector("[data-review-open]");
    if (opener) opener.focus();
  }, true);

  // Prompt history: an earlier prompt of the scene goes back into the form in one click.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-use-prompt]");
    if (!button) return;
    var prompt = button.form && button.form.querySelector("textarea[name=prompt]");
    if (!prompt) return;
    prompt.value = button.getAttribute("data-use-prompt");
    prompt.focus();
  });

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
        play(video);
      } else {
        video.pause();
      }
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-use-prompt]").forEach(function (button) { button.hidden = false; });
    document.querySelectorAll("[data-review-open]").forEach(function (button) { button.hidden = false; });
    document.querySelectorAll("form[data-autosubmit] [data-autosubmit-button]").forEach(function (button) { button.hidden = true; });
    if (document.querySelector("select[data-aspect=scene]")) followMode();
    setUpStoryboard(storyboard());
  });
})();
