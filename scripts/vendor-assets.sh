#!/usr/bin/env bash
# Copy the front-end files the pages load from the installed npm packages into app/static/vendor.
# Used by `make assets` and by the image's asset stage, so both ship the same files.
set -euo pipefail
cd "$(dirname "$0")/.."
out=app/static/vendor
mkdir -p "$out/swagger-ui"
cp node_modules/htmx.org/dist/htmx.min.js "$out/htmx.min.js"
cp node_modules/htmx-ext-sse/dist/sse.min.js "$out/htmx-ext-sse.min.js"
cp node_modules/modern-normalize/modern-normalize.css "$out/modern-normalize.css"
cp node_modules/chart.js/dist/chart.umd.min.js "$out/chart.umd.min.js"
cp node_modules/swagger-ui-dist/swagger-ui.css node_modules/swagger-ui-dist/swagger-ui-bundle.js "$out/swagger-ui/"
touch "$out/.installed"
