// The portal's map preview (an ES module: the platform's CSP allows no inline script).
// The element #map carries what to draw in data-* attributes:
//   data-basemap   a MapLibre style URL: the framework's regions (/portal/basemap.json)
//                  or the deployment's self-hosted basemap
//   data-style     the layer's default style (/ogc/collections/{id}/styles/default),
//                  whose source is the platform's own vector tiles (TileJSON)
//   data-bounds    west,south,east,north (lon/lat) to fit
//   data-highlight a region code to outline (region pages)
//   data-attribution  shown in the attribution control (e.g. the basemap's 审图号)
// When the map has drawn everything it sets data-state="idle" (tests wait for it);
// on an error it sets data-error.
import * as maplibregl from "../vendor/maplibre-gl/maplibre-gl.mjs";

const CJK_FONT = "'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', sans-serif";

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function highlight(style, code) {
  if (!code || !style.sources.regions) return;
  const only = ["==", ["get", "code"], code];
  const src = { source: "regions", "source-layer": "regions", filter: only };
  style.layers.push(
    { id: "highlight-fill", type: "fill", ...src,
      paint: { "fill-color": "#b71c1c", "fill-opacity": 0.12 } },
    { id: "highlight-line", type: "line", ...src,
      paint: { "line-color": "#b71c1c", "line-width": 2.5 } });
}

async function start(el) {
  const base = await getJSON(el.dataset.basemap);
  const style = { ...base, sources: { ...base.sources }, layers: [...base.layers] };
  if (el.dataset.style) {
    const layer = await getJSON(el.dataset.style);
    Object.assign(style.sources, layer.sources);
    style.layers.push(...layer.layers);
    style.glyphs = style.glyphs || layer.glyphs;
  }
  highlight(style, el.dataset.highlight);
  const options = {
    container: el, style, maxZoom: 18, localIdeographFontFamily: CJK_FONT,
    attributionControl: { compact: false, customAttribution: el.dataset.attribution || "" },
    center: [112.7, 22.3], zoom: 8,
  };
  if (el.dataset.bounds) {
    const [w, s, e, n] = el.dataset.bounds.split(",").map(Number);
    options.bounds = [[w, s], [e, n]];
    options.fitBoundsOptions = { padding: 30, maxZoom: 14 };
  }
  const map = new maplibregl.Map(options);
  map.addControl(new maplibregl.NavigationControl(), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  map.on("error", (event) => {
    el.dataset.error = String(event.error && event.error.message || event.error);
  });
  map.once("idle", () => { el.dataset.state = "idle"; });
}

const el = document.getElementById("map");
if (el) {
  start(el).catch((err) => { el.dataset.error = String(err.message || err); });
}
