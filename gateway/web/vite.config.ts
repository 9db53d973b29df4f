import { defineConfig } from "vite";

// The gateway serves dist/ (--web_root) with a single-page-app fallback;
// hashed files land in dist/assets/ (served as immutable).
export default defineConfig({
  build: { outDir: "dist", assetsDir: "assets", sourcemap: true, target: "es2022" },
  server: {
    proxy: { "/v1": process.env.TRAINMESH_GATEWAY ?? "http://127.0.0.1:8080" },
  },
});
