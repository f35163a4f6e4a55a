// Filled in by devstack.docs: [{"name": "auth", "url": "/api/docs/openapi/auth.json"}, ...]
const SERVICES = JSON.parse(document.getElementById("services-json").textContent);

function current() {
  const wanted = new URLSearchParams(window.location.search).get("service");
  return SERVICES.find((s) => s.name === wanted) || SERVICES[0];
}

function render() {
  const svc = current();
  document.title = "Plataforma API · " + svc.name;
  for (const a of document.querySelectorAll("#services a")) {
    if (a.dataset.name === svc.name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const link = document.getElementById("spec-link");
  link.href = svc.url;
  link.textContent = svc.url;
  window.ui = SwaggerUIBundle({
    url: svc.url,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,          // offline: never call the public validator
    persistAuthorization: true,  // keep the Bearer token across reloads and services
    displayRequestDuration: true,
    filter: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
  });
}

const nav = document.getElementById("services");
for (const svc of SERVICES) {
  const a = document.createElement("a");
  a.href = "?service=" + encodeURIComponent(svc.name);
  a.textContent = svc.name;
  a.dataset.name = svc.name;
  a.addEventListener("click", (ev) => {
    ev.preventDefault();
    history.pushState(null, "", a.href);
    render();
  });
  nav.appendChild(a);
}
window.addEventListener("popstate", render);
render();
