// Catalog search enhancements; the pages work without this file.
// Facets and sort apply on change through htmx, so the "Apply filters" button (the way to
// apply them without JavaScript) is hidden once this runs.
document.documentElement.classList.add("js-search");

// On narrow screens the filter panel starts folded and keeps whatever state the visitor gave
// it across in-place result updates; on wide screens it is always open.
const narrow = window.matchMedia("(max-width: 900px)");
let filtersOpen = false;

function applyFilterPanel() {
  document.querySelectorAll("details.facets-panel").forEach((panel) => {
    panel.open = narrow.matches ? filtersOpen : true;
  });
}

document.addEventListener("toggle", (event) => {
  if (narrow.matches && event.target.matches && event.target.matches("details.facets-panel")) {
    filtersOpen = event.target.open;
  }
}, true);
document.addEventListener("DOMContentLoaded", applyFilterPanel);
document.addEventListener("htmx:afterSettle", applyFilterPanel);
narrow.addEventListener("change", applyFilterPanel);
