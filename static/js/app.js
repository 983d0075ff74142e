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

  // --- A form is sent once ------------------------------------------------------------------
  // A double-click on Add scene sent the form twice: two scenes, each storing its picture
  // again, and Generate all then paid for both. So a form being posted, by the browser or by
  // htmx, refuses another submit until its answer comes, and its buttons are disabled
  // meanwhile: here for every form, rather than by each template's hx-disabled-elt, which a
  // plain form cannot have and an htmx form can forget. Listened for after data-confirm (a
  // form the person did not confirm is not being sent) and before htmx's own listener on the
  // form, which would queue the second request. The buttons are disabled only after the
  // submit: disabled during it, the button pressed would drop its name and value from what is
  // sent. A get form (the gallery's filters) is left alone: a second choice replaces the first.
  var sending = []; // {form, buttons}: the forms whose answer has not come, the buttons disabled

  function isSending(form) { return sending.some(function (sent) { return sent.form === form; }); }

  function holdForm(form) {
    var sent = { form: form, buttons: [] };
    sending.push(sent);
    setTimeout(function () {
      if (sending.indexOf(sent) < 0) return;
      Array.prototype.forEach.call(form.elements, function (control) {
        // A button the server drew disabled (Render film while a render runs) stays so after.
        if ((control.type === "submit" || control.type === "image") && !control.disabled) {
          control.disabled = true;
          sent.buttons.push(control);
        }
      });
    }, 0);
  }

  function releaseForm(form) {
    sending = sending.filter(function (sent) {
      if (form && sent.form !== form) return true;
      sent.buttons.forEach(function (button) { button.disabled = false; });
      return false;
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || (form.getAttribute("method") || "").toLowerCase() !== "post") return;
    if (isSending(form)) {
      event.preventDefault();
      event.stopImmediatePropagation();
      return;
    }
    // htmx's request holds the form once it is sent (below): htmx may yet send nothing.
    if (!(window.htmx && form.hasAttribute("hx-post"))) holdForm(form);
  }, true);

  // Released however the request ends ("loadend" follows an answer, a refusal, a failure, an
  // abort or a timeout alike); an answer that replaced the form took its buttons with it.
  document.addEventListener("htmx:beforeSend", function (event) {
    var form = event.detail.elt;
    if (form.tagName !== "FORM") return;
    holdForm(form);
    event.detail.xhr.addEventListener("loadend", function () { releaseForm(form); });
  });

  // A page left while its form was being posted, then come back to from the back/forward
  // cache, shows the form as it was left: ready to be sent again.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) releaseForm(null);
  });

  document.addEventListener("change", function (event) {
    var input = event.target;
    var root = input.closest && input.closest("[data-image-input]");
    if (root && input.type === "file") showChosenFile(root, input);
    if (root && input.type === "radio" && input.checked) showPickedImage(root, input);
    if (root && input.type === "checkbox") showRemoved(root, input);
    if (input.matches && input.matches("select[data-aspect=scene], select[data-mode=scene]")) {
      followMode();
      document.querySelectorAll("[data-image-input]").forEach(describeCrop);
    }
    if (input.form && input.form.hasAttribute("data-autosubmit") && lastInput !== "keyboard") {
      input.form.requestSubmit();
    }
  });

  // --- Image inputs (templates/generations/_image_input.html) ------------------------------
  // A file is chosen, dropped or pasted into the plain file input (so the form posts it as it
  // would without JavaScript); an image of the project is picked from the radios. The preview
  // shows the picture in a frame of the scene's aspect, cropped as the clip will crop it, and
  // offers the picture's own aspect when it differs; a reference image, which the clip is not
  // framed from, is shown whole (no data-image-input-aspect). Several inputs may share a page.

  function part(root, name) { return root.querySelector("[data-image-input-" + name + "]"); }

  function say(root, text, refused) {
    var status = part(root, "status");
    status.textContent = text;
    status.classList.toggle("error", !!refused);
  }

  // What the server will refuse, said before the form is sent, in the server's own words
  // (data-not-an-image, data-damaged, data-too-large: images.py's), with no preview: the file
  // is over the size limit, or its first bytes are no JPEG, PNG or WebP signature (an animated
  // GIF, an iPhone's HEIC renamed .jpg, an empty file), or they are and the browser cannot
  // decode the rest. The server still judges.
  function refuse(root, which) {
    part(root, "preview").hidden = true;
    say(root, part(root, "status").getAttribute("data-" + which), true);
  }

  function isPicture(head) {
    var at = function (offset, text) {
      for (var i = 0; i < text.length; i++) if (head[offset + i] !== text.charCodeAt(i)) return false;
      return true;
    };
    return at(0, "\xFF\xD8\xFF") || at(0, "\x89PNG\r\n\x1A\n") || (at(0, "RIFF") && at(8, "WEBP"));
  }

  function showPreview(root, src) {
    var image = part(root, "image");
    if (src) image.src = src;
    else if (image.hasAttribute("data-image-input-default")) image.src = image.getAttribute("data-image-input-default");
    else image.removeAttribute("src");
    part(root, "preview").hidden = !image.hasAttribute("src");
    describeCrop(root);
  }

  // A data: URL, not URL.createObjectURL: the Content-Security-Policy allows images from data:
  // but not from blob:.
  function showChosenFile(root, input) {
    var file = input.files && input.files[0];
    say(root, "");
    if (!file) { showPreview(root, ""); return; }
    root.querySelectorAll("input[type=radio], input[type=checkbox]").forEach(function (box) { box.checked = false; });
    var kept = part(root, "kept");
    if (kept) kept.hidden = true;
    part(root, "preview").hidden = true;
    // Said before anything is read, and the file let go of: sent, it would go whole (a minute
    // on a slow line) only to be refused.
    var most = Number(part(root, "status").getAttribute("data-max-bytes"));
    if (most && file.size > most) { input.value = ""; refuse(root, "too-large"); return; }
    var chosen = function () { return input.files && input.files[0] === file; };
    var head = new FileReader();
    head.onload = function () {
      if (!chosen()) return;
      if (!isPicture(new Uint8Array(head.result))) { refuse(root, "not-an-image"); return; }
      var reader = new FileReader();
      reader.onload = function () {
        // Decoded aside first, so a file that cannot be read never shows as a broken picture.
        var probe = new Image();
        probe.onload = function () { if (chosen()) showPreview(root, reader.result); };
        probe.onerror = function () { if (chosen()) refuse(root, "damaged"); };
        probe.src = reader.result;
      };
      reader.readAsDataURL(file);
    };
    head.readAsArrayBuffer(file.slice(0, 12));
  }

  function showPickedImage(root, radio) {
    var file = root.querySelector("input[type=file]");
    if (file) file.value = "";
    // A picked image replaces the current reference rather than leaving it removed.
    root.querySelectorAll("input[type=checkbox]").forEach(function (box) { box.checked = false; });
    say(root, "");
    showPreview(root, radio.getAttribute("data-image-url"));
  }

  // A reference's Remove box: nothing takes its place, so no pick, no file, no preview (the
  // server lets Remove win over a pick, as a radio cannot be unchecked without a script).
  function showRemoved(root, box) {
    say(root, "");
    if (!box.checked) { showPreview(root, ""); return; }
    root.querySelectorAll("input[type=radio]").forEach(function (radio) { radio.checked = false; });
    var file = root.querySelector("input[type=file]");
    if (file) file.value = "";
    part(root, "preview").hidden = true;
  }

  function aspectSelectFor(root) {
    var key = root.getAttribute("data-image-input-aspect");
    var form = root.closest("form");
    return key && form ? form.querySelector("select[data-aspect=" + key + "]") : null;
  }

  // The clip fills a 16:9 or 9:16 frame from the middle of the picture (object-fit: cover).
  function describeCrop(root) {
    if (!root.hasAttribute("data-image-input-aspect")) return;
    var image = part(root, "image");
    var select = aspectSelectFor(root);
    var frame = part(root, "frame");
    var caption = part(root, "crop");
    var button = part(root, "use-aspect");
    var aspect = select ? select.value : "landscape";
    frame.classList.toggle("image-input__frame--portrait", aspect === "portrait");
    frame.classList.toggle("image-input__frame--landscape", aspect !== "portrait");
    button.hidden = true;
    caption.textContent = "";
    if (!image.hasAttribute("src") || !image.complete || !image.naturalWidth) return;
    var ratio = image.naturalWidth / image.naturalHeight;
    var wanted = aspect === "portrait" ? 9 / 16 : 16 / 9;
    var cut = Math.round(100 * (1 - Math.min(ratio / wanted, wanted / ratio)));
    if (cut < 2) caption.textContent = "The whole picture fits the clip's frame.";
    else caption.textContent = "The clip shows what is inside the frame: " + cut + "% of the picture's " +
      (ratio > wanted ? "width is cut off at the sides." : "height is cut off at the top and bottom.");
    var own = image.naturalHeight > image.naturalWidth ? "portrait" : "landscape";
    var option = select && select.querySelector("option[value=" + own + "]");
    if (option && own !== aspect) {
      button.textContent = "Use the picture's own aspect (" + option.text + ")";
      button.setAttribute("data-aspect-value", own);
      button.hidden = false;
    }
  }

  function takeFiles(root, files) {
    var input = root.querySelector("input[type=file]");
    var file = Array.prototype.find.call(files || [], function (f) { return f.type.indexOf("image/") === 0; });
    if (!input) return false;
    if (!file) { say(root, "That is not an image; drop or paste a JPEG, PNG or WebP picture."); return false; }
    var transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  function setUpImageInput(root) {
    if (root.__imageInput) return;
    root.__imageInput = true;
    part(root, "hint").hidden = false;
    var zone = part(root, "zone");
    var image = part(root, "image");
    image.addEventListener("load", function () { describeCrop(root); });
    describeCrop(root);
    zone.addEventListener("dragover", function (event) {
      if (Array.prototype.indexOf.call(event.dataTransfer.types, "Files") < 0) return;
      event.preventDefault();
      zone.classList.add("image-input__zone--over");
    });
    zone.addEventListener("dragleave", function () { zone.classList.remove("image-input__zone--over"); });
    zone.addEventListener("drop", function (event) {
      if (!event.dataTransfer.files.length) return;
      event.preventDefault();
      zone.classList.remove("image-input__zone--over");
      takeFiles(root, event.dataTransfer.files);
    });
  }

  // A pasted picture goes to the image input holding the focus, else to the first one the mode
  // shows (the start image, or the first reference); a paste without a picture is left alone.
  document.addEventListener("paste", function (event) {
    var files = event.clipboardData && event.clipboardData.files;
    if (!files || !files.length) return;
    var focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("[data-image-input]");
    var root = focused || document.querySelector("[data-image-input]:not([hidden])");
    if (root && takeFiles(root, files)) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-image-input-use-aspect]");
    if (!button) return;
    var root = button.closest("[data-image-input]");
    var select = aspectSelectFor(root);
    if (!select) return;
    select.value = button.getAttribute("data-aspect-value");
    select.dispatchEvent(new Event("change", { bubbles: true }));
    select.focus();
  });

  // The scene form follows its mode: only the image fields the mode uses are shown, and only
  // the models that make the chosen mode and aspect stay selectable (the server checks both;
  // without JavaScript every field shows and the list is grouped by mode and aspect).
  function followMode() {
    var modeSelect = document.querySelector("select[data-mode=scene]");
    var aspectSelect = document.querySelector("select[data-aspect=scene]");
    var models = document.querySelector("select[data-models=scene]");
    var mode = modeSelect ? modeSelect.value : "image";
    var dropped = [];
    document.querySelectorAll("[data-modes]").forEach(function (field) {
      field.hidden = field.getAttribute("data-modes").split(" ").indexOf(mode) === -1;
      // Only the image the scene holds (shown as the preview's default): a file or a pick
      // chosen for a field the mode does not use is refused, not let go.
      var image = field.querySelector("[data-image-input-image][data-image-input-default]");
      if (field.hidden && image && image.getAttribute("src") === image.getAttribute("data-image-input-default")) {
        dropped.push(field.querySelector("label").textContent.trim().toLowerCase());
      }
    });
    if (modeSelect) sayDropped(modeSelect, dropped);
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

  // The server lets go of the images a mode does not use when the scene is saved (and the
  // clean-up deletes those nothing else uses): said beside the mode before Save, not found out
  // after, when switching back would ask for the picture again.
  function sayDropped(modeSelect, dropped) {
    var field = modeSelect.closest(".field") || modeSelect.parentNode;
    var note = document.getElementById("mode-drops");
    if (!note) {
      note = document.createElement("p");
      note.id = "mode-drops";
      note.className = "hint";
      note.setAttribute("aria-live", "polite");
      field.appendChild(note);
    }
    var names = dropped.length > 1 ? dropped.slice(0, -1).join(", ") + " and " + dropped[dropped.length - 1] : dropped[0];
    note.textContent = dropped.length ? "Saved in this mode, the scene lets go of its " + names + "." : "";
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

  function sceneIds(list) { return list.map(function (c) { return c.id.replace(/^scene-/, ""); }); }

  // `seen` is the order of the cards just before this move, which is what the person moved
  // from: the server refuses the move when its saved order is no longer that one (a teammate
  // moved a scene meanwhile) instead of saving this whole list over theirs. An answer redraws
  // the storyboard as saved, so the next move's `seen` is the order saved by this one.
  //
  // One order request at a time, kept here rather than by htmx: htmx queues a request made
  // while another is out on the same source element, and when the first answer redrew that
  // element (the storyboard) it dropped the queued one unsent (it sends nothing for an element
  // no longer on the page): a quick second move was undone on screen without a word. Moves
  // made while an order is out wait in `ordering.waiting` and go as one request once its
  // answer is in, with the `seen` of the first of them: the order the page showed then, which
  // is the order the request out saves (when that one is refused, so are they, in words). The
  // answer they waited for is not drawn: it would undo them on screen until theirs came.
  var ordering = { out: false, answered: false, waiting: null }; // waiting: {scene, seen}

  function sendOrder(board, card, control, seen) {
    var url = orderUrl();
    if (!url || !window.htmx) return;
    pendingFocus = { card: card.id, control: control };
    var scene = sceneIds(cards(board));
    if (ordering.out) {
      ordering.waiting = { scene: scene, seen: ordering.waiting ? ordering.waiting.seen : seen };
      return;
    }
    postOrder(url, { scene: scene, seen: seen });
  }

  function postOrder(url, values) {
    ordering.out = true;
    ordering.answered = false;
    // The hidden #scene-order is the source, never swapped, so its events reach the listener
    // below. The promise settles however the request ends, even unsent.
    var done = function () {
      var waiting = ordering.answered ? ordering.waiting : null;
      ordering.out = false;
      ordering.waiting = null;
      // After a failure the page says so and asks for a reload: moves made on top of an order
      // that was not saved are not sent.
      if (waiting) postOrder(url, waiting);
    };
    window.htmx.ajax("POST", url, {
      source: document.getElementById("scene-order"), target: "#scenes", swap: "outerHTML", values: values,
    }).then(done, done);
  }

  document.addEventListener("htmx:beforeOnLoad", function (event) {
    if (event.detail.elt.id !== "scene-order") return;
    var status = event.detail.xhr.status;
    ordering.answered = status >= 200 && status < 300;
    if (ordering.answered && ordering.waiting) event.preventDefault();
  });

  function moveCard(card, step, control) {
    var board = card.parentElement;
    var list = cards(board);
    var index = list.indexOf(card);
    var target = index + step;
    if (target < 0 || target >= list.length) return;
    var seen = sceneIds(list);
    if (step < 0) board.insertBefore(card, list[target]);
    else board.insertBefore(card, list[target].nextSibling);
    syncMoveButtons(board);
    focusControl(card, control);
    sendOrder(board, card, control, seen);
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
          // The order before the drag: the dragged card put back where it was picked up
          // (counted among the cards alone; a refusal's warning may stand before them).
          var seen = sceneIds(cards(board));
          seen.splice(event.oldDraggableIndex, 0, seen.splice(event.newDraggableIndex, 1)[0]);
          syncMoveButtons(board);
          focusControl(event.item, "handle");
          sendOrder(board, event.item, "handle", seen);
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

  // --- A request htmx made was refused or failed ---------------------------------------------
  // htmx swaps nothing for a 4xx or 5xx answer, so a click would seem to do nothing. The
  // refusal's own words (its error page's first paragraph: "… is archived, so it is
  // read-only …") show at the top of the page instead, in one alert each new one replaces.
  // A poll refused (signed out elsewhere, removed from the project) stops polling.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var words = "";
    if (xhr.status < 500 && xhr.responseText) {
      var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var first = page.querySelector(".error-page p");
      words = first ? first.textContent.trim() : "";
    }
    showProblem(words || "Flowsite could not do that just now (error " + xhr.status + "). Reload the page and try again.");
    var source = event.detail.elt;
    if (xhr.status < 500 && source && source.id === "poller") source.remove();
  });
  document.addEventListener("htmx:sendError", function () {
    showProblem("Flowsite could not be reached. Check your connection; the page keeps trying.");
  });
  function showProblem(text) {
    var list = document.getElementById("request-problem");
    if (!list) {
      list = document.createElement("ul");
      list.id = "request-problem";
      list.className = "messages";
      list.setAttribute("role", "alert");
      var main = document.getElementById("main");
      main.parentNode.insertBefore(list, main);
    }
    var item = document.createElement("li");
    item.className = "message message--error";
    item.textContent = text;
    list.replaceChildren(item);
  }

  // A card action or a move brings a newer poller out of band. A poll the old one still had
  // out then comes back to a poller no longer on the page: htmx would look for its
  // out-of-band parts inside it, miss them all and say so on the console. Such an answer is
  // dropped (the listener sits on the poller itself: a detached element's events reach no
  // further). The newer poller asks from a token no later than that poll's, so what it would
  // have brought still arrives. (Calling the request off instead makes htmx log the abort.)
  //
  // A poll answered while a storyboard order is out (or moves wait to go) is dropped too: it
  // may have read the storyboard before that order was saved, and would draw the old order
  // over the person's moves; their next move's `seen` would then be that old order, and the
  // server would refuse it as a teammate's change. The poller stays, and keeps polling, with
  // the token it had: the order's answer brings a newer poller (read after the order), and
  // should that answer never be drawn, the next poll brings again what this one had.
  // Refusals still come through (a poll refused stops polling, see above).
  //
  // So is a poll answered while a card's action (Pick, Comment, Upscale, ...) is out: htmx
  // swaps an answer into the element it aimed at when the request left, so a poll redrawing
  // that card, or the whole storyboard, meanwhile would leave the action's answer to land on a
  // card no longer on the page: its notice or refusal never shown. The action's answer brings
  // a poller with the token this one had, so the next poll brings what was dropped.
  document.addEventListener("htmx:load", function (event) {
    var root = event.target;
    var poller = root.id === "poller" ? root : root.querySelector && root.querySelector("#poller");
    if (poller) poller.addEventListener("htmx:beforeOnLoad", dropIfStale);
  });
  function dropIfStale(event) {
    var status = event.detail.xhr.status;
    var undoesWork = (ordering.out || cardRequests > 0) && status >= 200 && status < 300;
    if (!event.currentTarget.isConnected || undoesWork) event.preventDefault();
  }

  // Requests sent from inside the storyboard (the cards' forms) not yet ended. Counted down by
  // the request itself ("loadend" follows an answer, a failure, an abort or a timeout alike),
  // not by htmx's afterRequest, which fires on the form: by then the answer has redrawn its
  // card, and a detached form's events reach no listener on the document.
  var cardRequests = 0;
  document.addEventListener("htmx:beforeSend", function (event) {
    var board = storyboard();
    if (!board || !board.contains(event.detail.elt)) return;
    cardRequests += 1;
    event.detail.xhr.addEventListener("loadend", function () { cardRequests -= 1; });
    if (event.detail.target) event.detail.target.addEventListener("htmx:beforeSwap", toCardOnScreen);
  });

  // Polls wait for a card's action, but this page's own move cannot: its answer redraws the
  // storyboard at once. An action's answer that comes after it would land on the card the
  // move replaced (no notice, its poller lost), so it is swapped into the card with the same
  // id now on the page, by hand: htmx would look for the answer's out-of-band parts (the
  // poller) among the detached card's, not on the page. Listened for on the card it aimed at:
  // once detached, htmx's events on it reach nothing else.
  function toCardOnScreen(event) {
    event.currentTarget.removeEventListener("htmx:beforeSwap", toCardOnScreen);
    var target = event.detail.target;
    if (!event.detail.shouldSwap || !target || target.isConnected || !target.id) return;
    var now = document.getElementById(target.id);
    if (!now) return;
    event.detail.shouldSwap = false;
    window.htmx.swap(now, event.detail.serverResponse, { swapStyle: "outerHTML" });
  }

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

  // --- A card redrawn keeps the person's place ----------------------------------------------
  // Cards are redrawn whole: by the poll (a teammate's comment, a take changing state, a new
  // scene), by the answer to a card's own action, by a storyboard order. Left to htmx, a redraw
  // empties what the person was typing on a card (an Extend prompt, a comment), folds the other
  // takes away again and sends the focus to <body>. So just before a swap the storyboard's
  // typed fields, open folds and focused control are read, and put back on the redrawn cards
  // right after it, matched by id, else by form action and name. The fields of the form whose
  // own answer this is are left as the server drew them: a posted comment's box comes back
  // empty, a refused Extend with the prompt the server sent back. (hx-preserve cannot tell the
  // two apart: it would keep a posted comment in its box.) Text fields keep what they showed
  // (a card's only hold the person's words); a select keeps only a choice the person made.
  // Reordering keeps the focus of its own controls (pendingFocus above).

  var TYPED = "textarea, select, input:not([type]), input[type=text], input[type=search], input[type=number], input[type=email], input[type=url], input[type=tel]";
  var redraw = null; // {fields, open, focus}: read at htmx:beforeSwap, put back at afterSwap

  function fieldKey(node) {
    if (node.id) return "#" + node.id;
    return node.form && node.name ? node.form.getAttribute("action") + " " + node.name : null;
  }

  function choiceChanged(select) {
    return Array.prototype.some.call(select.options, function (o) { return o.selected !== o.defaultSelected; });
  }

  // The control holding the focus on a card, as something a redrawn card can be searched for.
  function placeOf(node) {
    var card = node && node.closest && node.closest("#scenes article.card");
    if (!card || node.matches("[data-move], [data-move-handle]")) return null;
    var place = {
      card: card.id, id: node.id, typed: node.matches(TYPED), name: node.name || "",
      where: node.form ? node.form.getAttribute("action") : node.getAttribute("href"),
      value: node.value, text: node.textContent.trim(),
    };
    try {
      place.start = node.selectionStart;
      place.end = node.selectionEnd;
      place.direction = node.selectionDirection;
    } catch (error) { /* a number field has no caret to read */ }
    return place;
  }

  // The same control on the redrawn card; else the same form's control of that name (Pick
  // became Unpick); else, the control gone with what it did (a cancelled take's Cancel, a
  // deleted take), the card's heading: never <body>.
  function controlFor(place) {
    var card = document.getElementById(place.card);
    if (!card) return null;
    var usable = function (node) { return !node.disabled && node.getClientRects().length > 0; };
    var byId = place.id && document.getElementById(place.id);
    if (byId && card.contains(byId) && usable(byId)) return byId;
    var same = Array.prototype.filter.call(card.querySelectorAll("a[href], button, input, select, textarea"), function (node) {
      var where = node.form ? node.form.getAttribute("action") : node.getAttribute("href");
      return where === place.where && (node.name || "") === place.name && usable(node);
    });
    var exact = place.typed ? same[0] : same.find(function (node) {
      return node.value === place.value && node.textContent.trim() === place.text;
    });
    return exact || (place.name && same[0]) || card.querySelector(".card__title");
  }

  // Where the focus was when a card's form sent its request: by the answer, the button pressed
  // has been disabled (a form is sent once, above), and the browser has moved the focus off it.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var board = storyboard();
    var place = board && board.contains(event.detail.elt) && placeOf(document.activeElement);
    if (place) event.detail.xhr.cardPlace = place;
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var board = storyboard();
    if (!board || !event.detail.shouldSwap) return;
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    var fields = [];
    board.querySelectorAll(TYPED).forEach(function (node) {
      var key = fieldKey(node);
      if (!key || (source && source.contains && source.contains(node))) return;
      if (node.tagName === "SELECT" && !choiceChanged(node)) return;
      fields.push({ key: key, value: node.value });
    });
    var open = Array.prototype.map.call(board.querySelectorAll("details[id][open]"), function (node) { return node.id; });
    redraw = { fields: fields, open: open, focus: placeOf(document.activeElement) || event.detail.xhr.cardPlace || null };
  });

  // The first afterSwap of an answer comes once all its parts (the card, the storyboard, out
  // of band or not) are in place, before the settle delay a keystroke could fall into.
  document.addEventListener("htmx:afterSwap", function () {
    if (!redraw) return;
    var kept = redraw;
    redraw = null;
    var board = storyboard();
    if (!board) return;
    kept.open.forEach(function (id) {
      var node = document.getElementById(id);
      if (node && board.contains(node)) node.open = true;
    });
    var byKey = {};
    board.querySelectorAll(TYPED).forEach(function (node) {
      var key = fieldKey(node);
      if (key) byKey[key] = node;
    });
    kept.fields.forEach(function (field) {
      var node = byKey[field.key];
      if (!node || node.value === field.value) return;
      if (node.tagName === "SELECT" && !node.querySelector('option[value="' + CSS.escape(field.value) + '"]')) return;
      node.value = field.value;
    });
    var place = kept.focus;
    var active = document.activeElement;
    if (!place || pendingFocus) return;
    var control = controlFor(place);
    // htmx itself refocuses a field with an id (without its caret, as its text came back
    // after); focus the person moved elsewhere meanwhile stays where they put it.
    if (!control || (active && active !== document.body && active !== control)) return;
    if (active !== control) control.focus({ preventScroll: true });
    if (place.typed && place.start !== null && place.start !== undefined) {
      try { control.setSelectionRange(place.start, place.end, place.direction); } catch (error) { /* no caret */ }
    }
  });

  // --- The film card keeps the focus (templates/generations/film.html) ----------------------
  // The card is swapped whole: by Render film's answer, then by its own poll while a render
  // runs. Left to htmx, focus inside it fell to <body> and the next Tab started from the top.
  // Focus that was on the card goes back to the same control on the new one (the nth control
  // of its kind, text and target, as a card's lists repeat "Takes" and "Download"), else, the
  // control gone or disabled (Render film while the render runs), to the card's heading.
  // Focus elsewhere on the page is left where it is.
  var FILM_CONTROLS = "a[href], button, input, select, textarea, summary, video[controls]";

  function filmCard() { return document.getElementById("film-card"); }

  function filmKey(node) {
    var where = node.form ? node.form.getAttribute("action") : node.getAttribute("href");
    return node.tagName + " " + where + " " + node.textContent.trim();
  }

  function filmPlace(node) {
    var card = filmCard();
    if (!card || !node || node === card || !card.contains(node)) return null;
    var key = filmKey(node);
    var same = Array.prototype.filter.call(card.querySelectorAll(FILM_CONTROLS), function (n) { return filmKey(n) === key; });
    return { id: node.id, key: key, nth: same.indexOf(node) };
  }

  // The button pressed is disabled while sent (see above) and so unfocused by the answer: read first.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var card = filmCard();
    var place = card && card.contains(event.detail.elt) && filmPlace(document.activeElement);
    if (place) event.detail.xhr.filmPlace = place;
  });

  // The versions' folds opened stay open through the card's swaps too.
  var filmFocus = null;
  var filmOpen = [];
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!event.detail.shouldSwap || !target || target.id !== "film-card") return;
    filmFocus = filmPlace(document.activeElement) || event.detail.xhr.filmPlace || null;
    filmOpen = Array.prototype.map.call(target.querySelectorAll("details[id][open]"), function (node) { return node.id; });
  });

  document.addEventListener("htmx:afterSwap", function () {
    var place = filmFocus;
    filmFocus = null;
    filmOpen.forEach(function (id) {
      var fold = document.getElementById(id);
      if (fold) fold.open = true;
    });
    filmOpen = [];
    var card = place && filmCard();
    if (!card) return;
    // Focus already off <body>: htmx put it back (a control with an id), or the person moved it.
    var active = document.activeElement;
    if (active && active !== document.body) return;
    var usable = function (n) { return !n.disabled && n.getClientRects().length > 0; };
    var byId = place.id && document.getElementById(place.id);
    var same = Array.prototype.filter.call(card.querySelectorAll(FILM_CONTROLS), function (n) { return filmKey(n) === place.key; });
    var control = byId && card.contains(byId) ? byId : same[place.nth] || same[0];
    if (!control || !usable(control)) control = card.querySelector("#film-card-title");
    if (control) control.focus({ preventScroll: true });
  });

  // --- Filters that apply themselves (the gallery's form[data-autosubmit]) -------------------
  // A choice made with the mouse (or a touch) applies at once. One made from the keyboard waits
  // for Enter or the form's Show button (kept visible for this, and for pages without
  // JavaScript): a closed <select> fires `change` on every arrow key, and applying at the first
  // one loaded a new page, so a keyboard user could only ever reach the next option. Chosen
  // over swapping only the results with htmx, which would still filter on every arrow key (a
  // request each, the review list changing underfoot) and split the page into fragments.
  // The new page gives the focus back to the filter or button that applied the choice.
  var lastInput = "pointer";
  document.addEventListener("keydown", function () { lastInput = "keyboard"; }, true);
  document.addEventListener("pointerdown", function () { lastInput = "pointer"; }, true);

  document.addEventListener("keydown", function (event) {
    var select = event.target;
    if (event.key !== "Enter" || select.tagName !== "SELECT") return;
    if (!select.form || !select.form.hasAttribute("data-autosubmit")) return;
    event.preventDefault();
    select.form.requestSubmit();
  });

  var REFOCUS = "flowsite-refocus";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !form.hasAttribute("data-autosubmit")) return;
    var used = event.submitter || document.activeElement;
    if (!used || !used.id || !form.contains(used)) return;
    try {
      sessionStorage.setItem(REFOCUS, JSON.stringify({ path: location.pathname, id: used.id }));
    } catch (error) { /* storage refused: the focus starts at the top, as without a script */ }
  });

  function refocusFilter() {
    var saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(REFOCUS));
      sessionStorage.removeItem(REFOCUS);
    } catch (error) { return; }
    var node = saved && saved.path === location.pathname && document.getElementById(saved.id);
    if (node) node.focus();
  }

  // --- Gallery review: the filtered clips of this page, one at a time, full screen ----------

  var review = { dialog: null, clips: [], index: 0 };

  // play() returns a promise that rejects when a pause or a new source interrupts it; that is
  // the user changing their mind, not a fault, so only the interruption is swallowed. A caller
  // that plays without a click of its own (the film preview moving to its next clip) passes
  // ``refused``, told when the browser's autoplay rule says no (NotAllowedError).
  function play(video, refused) {
    var started = video.play();
    if (started && started.catch) {
      started.catch(function (error) {
        if (error.name === "AbortError") return;
        if (refused && error.name === "NotAllowedError") refused(error);
        else throw error;
      });
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

  // Copy buttons (the invite link): the named field's text goes to the clipboard. Where the
  // browser refuses (no permission, no clipboard on a plain-HTTP address), the text is
  // selected instead, so Ctrl+C copies it, and the status line says so.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) return;
    var status = document.getElementById(field.id + "-status");
    function say(text) { if (status) status.textContent = text; }
    function selectInstead() {
      button.textContent = "Copy";
      button.classList.remove("is-copied");
      field.focus();
      field.select();
      say("Your browser did not let Flowsite copy: the link is selected, press Ctrl+C (⌘C on a Mac) to copy it.");
    }
    if (!navigator.clipboard || !navigator.clipboard.writeText) {
      selectInstead();
      return;
    }
    navigator.clipboard.writeText(field.value).then(function () {
      button.textContent = "Copied";
      button.classList.add("is-copied");
      say("Copied the link to the clipboard.");
    }, selectInstead);
  });

  // --- Film preview: the picks in order, each from its trim in to its trim out ----------------
  // One video element: at a clip's trim out (timeupdate) or its end (ended) the next clip is
  // loaded, sought to its trim in once its metadata is known, and played on. A clip the next
  // pick extends stops its seam-out seconds before its end, as the film cuts it (film.py's
  // Segment.at_seam), so the second the extension repeats plays once.

  var preview = { section: null, video: null, clips: [], index: 0, playing: false, finished: false };

  function previewClip(index) {
    var node = preview.clips[index];
    var number = function (name) {
      var value = node.getAttribute(name);
      return value === "" || value === null ? null : parseFloat(value);
    };
    return { url: node.getAttribute("data-video"), label: node.getAttribute("data-label"), trimIn: number("data-trim-in"), trimOut: number("data-trim-out"), seamOut: number("data-seam-out") || 0 };
  }

  // Where the clip is left: its trim out, or earlier where the seam cut falls (null: its end).
  function previewEnd(clip, duration) {
    if (!clip.seamOut || !duration) return clip.trimOut;
    var cut = Math.max(duration - clip.seamOut, 0);
    return clip.trimOut === null ? cut : Math.min(clip.trimOut, cut);
  }

  function previewAnnounce(text) { document.getElementById("film-preview-label").textContent = text; }

  function previewSync() {
    var button = preview.section.querySelector("[data-preview=play]");
    button.textContent = preview.playing ? "Pause" : "Play";
    preview.section.querySelector("[data-preview=prev]").disabled = preview.index === 0;
    preview.section.querySelector("[data-preview=next]").disabled = preview.index === preview.clips.length - 1;
  }

  // The video's name is the clip it holds (its scene and take); the label beside it adds
  // whether it plays.
  function previewName(index) { preview.video.setAttribute("aria-label", previewClip(index).label); }

  function previewLoad(index) {
    preview.index = index;
    preview.finished = false;
    var clip = previewClip(index);
    preview.video.src = clip.url;
    previewName(index);
    previewAnnounce(clip.label + (preview.playing ? "" : " (paused)"));
    previewSync();
  }

  function previewRefused() {
    preview.playing = false;
    previewAnnounce(previewClip(preview.index).label + " (press Play to go on)");
    previewSync();
  }

  function previewPlay() {
    preview.playing = true;
    if (preview.finished || !preview.video.getAttribute("src")) previewLoad(preview.finished ? 0 : preview.index);
    else {
      previewAnnounce(previewClip(preview.index).label);
      previewSync();
      play(preview.video, previewRefused);
    }
  }

  function previewPause() {
    preview.playing = false;
    preview.video.pause();
    previewAnnounce(previewClip(preview.index).label + " (paused)");
    previewSync();
  }

  // The clip at ``from`` is done: the next one plays, or the film has been watched to its end.
  function previewAdvance(from) {
    if (from !== preview.index || preview.finished) return;
    if (preview.index < preview.clips.length - 1) {
      previewLoad(preview.index + 1);
      return;
    }
    preview.video.pause();
    preview.playing = false;
    preview.finished = true;
    previewAnnounce("End of the film: " + preview.clips.length + " scene" + (preview.clips.length === 1 ? "" : "s") + " played. Press Play to watch again.");
    previewSync();
  }

  function setUpPreview() {
    preview.section = document.querySelector("[data-film-preview]");
    if (!preview.section) return;
    preview.video = document.getElementById("film-preview-video");
    preview.clips = Array.prototype.slice.call(preview.section.querySelectorAll("[data-preview-clip]"));
    if (!preview.clips.length) return;
    preview.section.hidden = false;
    previewName(0);
    var video = preview.video;
    video.addEventListener("loadedmetadata", function () {
      var clip = previewClip(preview.index);
      if (clip.trimIn) video.currentTime = clip.trimIn;
      if (preview.playing) play(video, previewRefused);
    });
    video.addEventListener("timeupdate", function () {
      var clip = previewClip(preview.index);
      var end = previewEnd(clip, video.duration);
      if (end !== null && video.currentTime >= end) previewAdvance(preview.index);
    });
    video.addEventListener("ended", function () { previewAdvance(preview.index); });
    preview.section.addEventListener("click", function (event) {
      var button = event.target.closest("[data-preview]");
      if (!button || button.disabled) return;
      var action = button.getAttribute("data-preview");
      if (action === "play") {
        if (preview.playing) previewPause(); else previewPlay();
      } else {
        previewLoad(preview.index + (action === "next" ? 1 : -1));
      }
    });
    previewSync();
  }

  // An extension joined to its source on its card: the source plays until its last second
  // (which the extension repeats), then the extension from its start.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-seam-play]");
    if (!button) return;
    var box = button.closest("[data-seam]");
    var video = box.querySelector("[data-seam-video]");
    var cut = parseFloat(box.getAttribute("data-seam-seconds")) || 0;
    var switched = false;
    function atSeam() {
      if (switched || !video.duration || video.currentTime < video.duration - cut) return;
      switched = true;
      video.removeEventListener("timeupdate", atSeam);
      video.src = box.getAttribute("data-extension");
      box.setAttribute("data-seam-part", "extension");
      // No longer inside the click: a browser that refuses sound without one plays it muted.
      var started = video.play();
      if (started && started.catch) {
        started.catch(function (error) {
          if (error.name !== "NotAllowedError") return;
          video.muted = true;
          play(video);
        });
      }
    }
    video.hidden = false;
    video.addEventListener("timeupdate", atSeam);
    video.src = box.getAttribute("data-source");
    box.setAttribute("data-seam-part", "source");
    play(video);
  });

  // Cards swapped in later (a poll, an action) bring their own preview buttons.
  document.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll("[data-seam-play][hidden]").forEach(function (button) { button.hidden = false; });
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-copy]").forEach(function (button) { button.hidden = false; });
    setUpPreview();
    document.querySelectorAll("[data-use-prompt]").forEach(function (button) { button.hidden = false; });
    document.querySelectorAll("[data-review-open]").forEach(function (button) { button.hidden = false; });
    document.querySelectorAll("[data-seam-play]").forEach(function (button) { button.hidden = false; });
    refocusFilter();
    if (document.querySelector("select[data-aspect=scene]")) followMode();
    document.querySelectorAll("[data-image-input]").forEach(setUpImageInput);
    setUpStoryboard(storyboard());
  });
})();
