// Starts Swagger UI (the local swagger-ui-dist copy) on the OpenAPI document the page
// names in data-spec-url: a file, not an inline script, so the pages keep the platform's
// Content-Security-Policy (script-src 'self'). Used by /docs and /ogc/openapi?f=html.
(function () {
  "use strict";
  var node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    validatorUrl: null, // no online validator: the network is offline
  });
})();
