// The playground: one prompt, several models, answers streamed side by side.
// Talks to the serving gateway's OpenAI API on this origin (/v1/chat/completions with
// stream: true -> server-sent events "data: {chunk}" ... "data: [DONE]"), signed in by the
// session cookie plus the X-CSRFToken header.
(function () {
  "use strict";
  var form = document.getElementById("playground");
  if (!form) return;
  var answers = document.getElementById("answers");
  var status = document.getElementById("playground-status");
  var stopButton = document.getElementById("stop");
  var sendButton = document.getElementById("send");
  var csrf = (document.querySelector("meta[name=csrf-token]") || {}).content || "";
  var controller = null;

  function column(title, kind) {
    var box = document.createElement("section");
    box.className = "column";
    box.dataset.model = title;
    box.dataset.kind = kind;
    var heading = document.createElement("h3");
    heading.textContent = title;
    var output = document.createElement("div");
    output.className = "output";
    output.setAttribute("aria-busy", "true");
    box.appendChild(heading);
    box.appendChild(output);
    answers.appendChild(box);
    return { box: box, output: output };
  }

  // Feed SSE text; calls onData(json) per event, returns the unconsumed tail.
  function parseEvents(buffer, onData) {
    var events = buffer.split(/\r?\n\r?\n/);
    var rest = events.pop();
    events.forEach(function (event) {
      event.split(/\r?\n/).forEach(function (line) {
        if (line.indexOf("data:") !== 0) return;
        var payload = line.slice(5).trim();
        if (payload === "[DONE]") { onData(null); return; }
        try { onData(JSON.parse(payload)); } catch (e) { /* not JSON: ignore, as OpenAI clients do */ }
      });
    });
    return rest;
  }

  function stream(model, messages, target, maxTokens, signal) {
    return fetch(form.dataset.endpoint, {
      method: "POST",
      credentials: "same-origin",
      // No `Accept: text/event-stream`: the gateway (DRF) negotiates JSON renderers and would
      // answer 406; the OpenAI clients do not send it either.
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ model: model, messages: messages, stream: true, max_tokens: maxTokens }),
      signal: signal,
    }).then(function (response) {
      if (!response.ok) {
        return response.text().then(function (text) {
          var message = text;
          try { message = JSON.parse(text).error.message || text; } catch (e) { /* plain text */ }
          throw new Error(response.status + ": " + (message || response.statusText));
        });
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      var finished = false;
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) {
            parseEvents(buffer + "\n\n", append);
            return;
          }
          buffer = parseEvents(buffer + decoder.decode(chunk.value, { stream: true }), append);
          if (!finished) return pump();
          reader.cancel();
        });
      }
      function append(data) {
        if (data === null) { finished = true; return; }
        if (data.error) throw new Error(data.error.message || "the engine failed while streaming");
        var choice = data.choices && data.choices[0];
        var text = choice ? (choice.delta ? choice.delta.content : choice.text) : "";
        if (text) target.output.textContent += text;
      }
      return pump();
    }).then(function () {
      target.box.dataset.done = "true";
      target.output.setAttribute("aria-busy", "false");
    }, function (error) {
      target.output.setAttribute("aria-busy", "false");
      target.box.dataset.error = "true";
      var note = document.createElement("p");
      note.className = "answer wrong";
      note.textContent = error.name === "AbortError" ? "stopped" : "error " + error.message;
      target.box.appendChild(note);
    });
  }

  function retrieve(suite, question) {
    var url = form.dataset.retrieve + "?" + new URLSearchParams({ suite: suite, q: question });
    return fetch(url, { credentials: "same-origin" }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
        return body;
      });
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var prompt = form.elements.prompt.value.trim();
    if (!prompt) return;
    var checked = Array.prototype.slice.call(form.querySelectorAll("input[name=model]:checked"));
    var suite = form.elements.rag_suite.value;
    var maxTokens = parseInt(form.elements.max_tokens.value, 10) || 128;
    if (!checked.length && !suite) { status.textContent = "Pick at least one model."; return; }
    answers.textContent = "";
    controller = new AbortController();
    stopButton.disabled = false;
    sendButton.disabled = true;
    status.textContent = "Streaming…";
    var messages = [{ role: "user", content: prompt }];
    var jobs = checked.map(function (box) {
      return stream(box.value, messages, column(box.value, box.dataset.kind), maxTokens, controller.signal);
    });
    if (suite) {
      var firstBase = form.querySelector("input[name=model][data-kind=base]");
      var firstAdapter = checked.filter(function (box) { return box.dataset.kind === "adapter"; })[0];
      var checkedBase = checked.filter(function (box) { return box.dataset.kind === "base"; })[0];
      var base = checkedBase ? checkedBase.value : firstAdapter ? firstAdapter.dataset.base : firstBase && firstBase.value;
      var target = column(base + " + RAG", "rag");
      var list = document.createElement("ol");
      list.className = "passages";
      target.box.insertBefore(list, target.output);
      jobs.push(retrieve(suite, prompt).then(function (found) {
        found.passages.forEach(function (passage) {
          var item = document.createElement("li");
          var title = document.createElement("strong");
          title.textContent = passage.title || passage.id;
          item.appendChild(title);
          item.appendChild(document.createTextNode(": " + passage.text));
          item.dataset.doc = passage.id;
          list.appendChild(item);
        });
        var ragMessages = (found.system ? [{ role: "system", content: found.system }] : []).concat([{ role: "user", content: found.prompt }]);
        return stream(base, ragMessages, target, maxTokens, controller.signal);
      }, function (error) {
        target.output.textContent = "retrieval failed: " + error.message;
      }));
    }
    Promise.all(jobs).then(function () {
      status.textContent = "Done.";
      stopButton.disabled = true;
      sendButton.disabled = false;
    });
  });

  stopButton.addEventListener("click", function () {
    if (controller) controller.abort();
  });
})();
