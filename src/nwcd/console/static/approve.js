// Tell the app that opened this window where its new connection is (the Alby SDK's
// fromAuthorizationUrl waits for this message), or go back to its return_to page.
(function () {
  var data = document.getElementById("nwc-success");
  if (!data) return;
  var message = JSON.parse(data.dataset.message);
  if (window.opener) {
    window.opener.postMessage(message, data.dataset.origin);
  } else if (/^https?:\/\//.test(data.dataset.returnTo)) {
    window.location.assign(data.dataset.returnTo);
  }
})();
