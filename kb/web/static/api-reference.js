// The API reference page: Swagger UI over /api/v1/openapi.json, started here rather than inline so the page
// runs under the app's Content-Security-Policy (scripts from this site only).
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.spec,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
