// The sign-in link's token goes into a POST (a link previewer that only fetches the link does
// not use it up), then out of the address bar; the form is sent at once.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token") || "";
  document.getElementById("token").value = token;
  history.replaceState(null, "", "/signin");
  if (token) {
    document.getElementById("signin-form").submit();
  }
})();
