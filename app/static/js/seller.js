// Seller area enhancements. Every page works without this file: the publisher picker has a
// button, the description preview has a "Preview description" button, and the charts have tables.
(function () {
  "use strict";

  // The publisher picker switches as soon as a publisher is chosen (its button is for no-JS use).
  function hideAutosubmitButtons() {
    document.querySelectorAll("form[data-autosubmit] button[type=submit]").forEach((b) => { b.style.display = "none"; });
  }
  document.addEventListener("change", (event) => {
    const form = event.target.closest("form[data-autosubmit]");
    if (form) form.requestSubmit();
  });

  // Suggest the slug from the name until the seller edits the slug themselves.
  function slugify(text) {
    return text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 120);
  }
  function wireSlug() {
    const name = document.getElementById("name");
    const slug = document.getElementById("slug");
    if (!name || !slug) return;
    let touched = slug.value !== "" && slug.value !== slugify(name.value);
    slug.addEventListener("input", () => { touched = slug.value !== ""; });
    name.addEventListener("input", () => { if (!touched) slug.value = slugify(name.value); });
  }

  // Charts on the analytics page; data comes from a JSON block the server rendered.
  const palette = ["#5b4cf0", "#16a3b8", "#f59f00", "#2b8a3e", "#c0283a", "#9b5cf0"];
  function formatMinor(value, exponent) {
    return (value / Math.pow(10, exponent)).toFixed(exponent);
  }
  function drawCharts() {
    const source = document.getElementById("analytics-data");
    if (!source || typeof window.Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    const Chart = window.Chart;
    const small = window.matchMedia("(max-width: 640px)").matches;
    const days = data.days.map((d) => d.slice(5));
    const common = { responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { position: "bottom" } } };

    const revenue = document.getElementById("chart-revenue");
    if (revenue) {
      new Chart(revenue, {
        type: "bar",
        data: { labels: days, datasets: data.revenue.map((series, i) => ({
          label: `Revenue (${series.currency})`, backgroundColor: palette[i % palette.length],
          data: series.values.map((v) => Number(formatMinor(v, series.exponent))),
        })) },
        options: { ...common, scales: { y: { beginAtZero: true } } },
      });
    }
    const instances = document.getElementById("chart-instances");
    if (instances) {
      new Chart(instances, {
        type: "line",
        data: { labels: days, datasets: [
          { label: "New paid instances", data: data.newInstances, borderColor: palette[0], backgroundColor: palette[0], tension: 0 },
          { label: "Trials started", data: data.trialsStarted, borderColor: palette[2], backgroundColor: palette[2], tension: 0 },
          { label: "Trials converted", data: data.trialsConverted, borderColor: palette[3], backgroundColor: palette[3], tension: 0 },
        ] },
        options: { ...common, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
      });
    }
    const usage = document.getElementById("chart-usage");
    if (usage) {
      new Chart(usage, {
        type: "bar",
        data: { labels: data.offerings, datasets: [
          { label: "Runs", data: data.runs, backgroundColor: palette[0] },
          { label: "Credits consumed", data: data.credits, backgroundColor: palette[1] },
        ] },
        options: { ...common, indexAxis: small ? "y" : "x", scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
      });
    }
  }

  function init() { hideAutosubmitButtons(); wireSlug(); drawCharts(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
