// Swagger UI for /api/docs: reads the spec URL and (when signed in) the CSRF token from the page.
document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  if (!root || typeof window.SwaggerUIBundle !== "function") return;
  const csrfToken = root.dataset.csrfToken || "";
  const safe = new Set(["GET", "HEAD", "OPTIONS"]);
  window.SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    tryItOutEnabled: false,
    requestInterceptor: (request) => {
      if (csrfToken && !safe.has((request.method || "GET").toUpperCase())) {
        request.headers["X-CSRFToken"] = csrfToken;
      }
      return request;
    },
  });
});
