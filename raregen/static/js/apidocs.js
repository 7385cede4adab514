// Renders /docs/api: Redoc (loaded just before, from /static/dist) draws the OpenAPI
// document named by the container's data-spec-url. A file of its own: the page has no inline
// script (Content-Security-Policy).
(function () {
  'use strict';
  var box = document.getElementById('api-reference');
  if (!box || !window.Redoc) {
    return;
  }
  window.Redoc.init(box.getAttribute('data-spec-url'), {
    hideDownloadButton: false,
    expandResponses: '200,202',
    jsonSampleExpandLevel: 3,
  }, box);
})();
