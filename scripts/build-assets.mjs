// Copy the built files of the browser packages (installed by `npm ci` from
// package-lock.json) into jmgeo/static/vendor/<package>/, where the platform serves them
// at /static/vendor/... Nothing is fetched from a CDN at run time: the government network
// is offline. The list names every file a page may load; vendor/manifest.json records the
// versions (shown in the README and the portal's "about" page).
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "jmgeo", "static", "vendor");

const FILES = {
  "maplibre-gl": ["dist/maplibre-gl.mjs", "dist/maplibre-gl-worker.mjs",
                  "dist/maplibre-gl.css", "LICENSE.txt"],
  "echarts": ["dist/echarts.min.js", "dist/echarts.esm.min.mjs", "LICENSE"],
  "leaflet": ["dist/leaflet.js", "dist/leaflet.css", "dist/images", "LICENSE"],
  // the stylesheet of pygeoapi's HTML pages (/ogc/...?f=html, jmgeo/ogc/templates)
  "bootstrap": ["dist/css/bootstrap.min.css", "LICENSE"],
  "swagger-ui-dist": ["swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                      "swagger-ui.css", "favicon-32x32.png", "LICENSE"],
};

rmSync(out, { recursive: true, force: true });
const manifest = {};
for (const [pkg, files] of Object.entries(FILES)) {
  const src = join(root, "node_modules", pkg);
  const meta = JSON.parse(readFileSync(join(src, "package.json"), "utf8"));
  manifest[pkg] = { version: meta.version, license: meta.license };
  for (const f of files) {
    const from = join(src, f);
    if (!existsSync(from)) {
      console.error(`build-assets: ${pkg}@${meta.version} has no ${f}: update scripts/build-assets.mjs`);
      process.exit(1);
    }
    const to = join(out, pkg, f.replace(/^dist\//, ""));
    mkdirSync(dirname(to), { recursive: true });
    cpSync(from, to, { recursive: true });
  }
}
writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`assets: ${Object.entries(manifest).map(([k, v]) => `${k}@${v.version}`).join(", ")} -> jmgeo/static/vendor/`);
