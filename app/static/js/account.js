// Account pages: the credits-per-day chart on Billing & Credits. The page shows the same figures
// as a table without this file.
(function () {
  const PALETTE = ["#5b4cf0", "#16a3b8", "#d9480f", "#2b8a3e", "#c2255c", "#f59f00", "#1c7ed6", "#862e9c"];

  function drawUsageChart() {
    const canvas = document.getElementById("usage-chart");
    const source = document.getElementById("usage-data");
    if (!canvas || !source || typeof window.Chart === "undefined" || canvas.dataset.drawn) return;
    const data = JSON.parse(source.textContent);
    canvas.dataset.drawn = "1";
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.datasets.map((set, i) => ({
          label: set.label,
          data: set.data,
          backgroundColor: PALETTE[i % PALETTE.length],
          borderRadius: 3,
          maxBarThickness: 28,
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12 } },
          tooltip: { callbacks: { footer: (items) => "Total: " + items.reduce((sum, item) => sum + item.parsed.y, 0) + " credits" } },
        },
        scales: {
          x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
          y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "Credits" } },
        },
      },
    });
  }

  document.addEventListener("DOMContentLoaded", drawUsageChart);
  // pages reached through hx-boost swap the body without a DOMContentLoaded
  document.addEventListener("htmx:load", drawUsageChart);
})();
