// Charts from data the server embedded with json_script; the tables next to them hold the same numbers.
(function () {
  "use strict";
  if (!window.Chart) return;
  var ARM_COLOURS = { base: "#8c959f", base_rag: "#bf8700", adapter: "#0b5cad", adapter_rag: "#1a7f37" };
  var percent = function (value) { return value == null ? "n/a" : (value * 100).toFixed(1) + "%"; };

  document.querySelectorAll("canvas[data-arms-chart]").forEach(function (canvas) {
    var data = JSON.parse(document.getElementById(canvas.dataset.armsChart).textContent);
    canvas.chart = new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.datasets.map(function (set) {
          return { label: set.label, data: set.data, stderr: set.stderr, backgroundColor: ARM_COLOURS[set.arm] || "#6e7781" };
        }),
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: { y: { min: 0, max: 1, ticks: { callback: percent } } },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (item) {
                var err = item.dataset.stderr && item.dataset.stderr[item.dataIndex];
                return item.dataset.label + ": " + percent(item.raw) + (err != null ? " ± " + (err * 100).toFixed(1) : "");
              },
            },
          },
        },
      },
    });
    canvas.dataset.drawn = "true";
  });

  document.querySelectorAll("canvas[data-scatter-chart]").forEach(function (canvas) {
    var data = JSON.parse(document.getElementById(canvas.dataset.scatterChart).textContent);
    canvas.chart = new Chart(canvas, {
      type: "scatter",
      data: { datasets: [{ label: "versions", data: data.points, backgroundColor: "#0b5cad", pointRadius: 5 }] },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: {
          x: { type: data.log_x ? "logarithmic" : "linear", title: { display: true, text: data.x_label } },
          y: { min: 0, max: 1, title: { display: true, text: "average score" }, ticks: { callback: percent } },
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (item) { return item.raw.label + ": " + percent(item.raw.y) + " at " + item.raw.x.toLocaleString(); } } },
        },
      },
    });
    canvas.dataset.drawn = "true";
  });
})();
