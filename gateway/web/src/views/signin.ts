import { api, ApiError, session } from "../api";
import { navigate, type Page } from "../nav";
import { h, clear } from "../ui";

// Sign in with a user name and password, or paste an API key.
export function signInPage(root: HTMLElement, reason: string): Page {
  const error = h("p", { class: "error", role: "alert", "data-testid": "signin-error" }, reason);
  const name = h("input", { id: "name", name: "username", autocomplete: "username", required: true });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const key = h("input", { id: "apikey", name: "apikey", placeholder: "tm_…", autocomplete: "off" });

  const useToken = async (token: string) => {
    session.set(token);
    try {
      await api("GET", "/v1/auth/whoami");
      navigate("/jobs", true);
    } catch (e) {
      session.clear();
      error.textContent = e instanceof ApiError ? e.message : String(e);
    }
  };

  const login = h(
    "form",
    {
      class: "card",
      "aria-label": "Sign in",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        error.textContent = "";
        try {
          const r = await api<{ accessToken: string }>("POST", "/v1/auth:login", {
            name: name.value,
            password: password.value,
          });
          await useToken(r.accessToken);
        } catch (err) {
          error.textContent = err instanceof ApiError ? err.message : String(err);
        }
      },
    },
    h("h2", {}, "Sign in"),
    h("label", { for: "name" }, "User"),
    name,
    h("label", { for: "password" }, "Password"),
    password,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  const withKey = h(
    "form",
    {
      class: "card",
      "aria-label": "Use an API key",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        error.textContent = "";
        await useToken(key.value.trim());
      },
    },
    h("h2", {}, "Or use an API key"),
    h("label", { for: "apikey" }, "API key"),
    key,
    h("button", { type: "submit" }, "Use key"),
  );
  clear(root, h("section", { class: "signin" }, h("h1", {}, "trainmesh"), error, login, withKey));
  name.focus();
  return {};
}
