// Live progress of a broadcast campaign: poll the JSON endpoint until the campaign stops running.
(function () {
  var box = document.getElementById("progress");
  if (!box) { return; }
  var url = box.getAttribute("data-url");
  var statusEl = document.getElementById("campaign-status");
  var rounds = 0;
  function set(id, value) { var el = document.getElementById(id); if (el) { el.textContent = value; } }
  function tick() {
    rounds += 1;
    var xhr = new XMLHttpRequest();
    xhr.open("GET", url);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.onload = function () {
      if (xhr.status !== 200) { return; }
      var p = JSON.parse(xhr.responseText);
      document.getElementById("progress-bar").style.width = p.percent + "%";
      set("done", p.done); set("total", p.recipients); set("percent", p.percent);
      set("c-sent", p.sent); set("c-pending", p.pending + p.in_flight);
      set("c-failed", p.failed); set("c-skipped", p.skipped);
      statusEl.textContent = p.status_label;
      statusEl.setAttribute("data-status", p.status);
      if ((p.status === "running" || p.status === "paused") && rounds < 1800) { setTimeout(tick, 1500); }
    };
    xhr.send();
  }
  if (statusEl.getAttribute("data-status") === "running" || statusEl.getAttribute("data-status") === "paused") {
    setTimeout(tick, 1000);
  }
})();
