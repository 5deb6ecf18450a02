// What the inline scripts of pygeoapi's HTML pages did, as a file (the platform's
// Content-Security-Policy refuses inline script): the maps of the collection, items, item
// and tiles pages, the items page's limit selector, the records search form and the tile
// matrix set selector. The page's data comes from the JSON block #jmgeo-page written by
// jmgeo/ogc/templates/_base.html. Maps have no online basemap (地图管理条例; the network
// is offline): their base is the framework's administrative regions, drawn by the
// platform itself (the regions collection's map tiles).
(function () {
  "use strict";

  function pageData() {
    var node = document.getElementById("jmgeo-page");
    if (!node) return null;
    // pygeoapi's to_json writes < and > as entities (safe inside the block): undo that
    var text = node.textContent.replace(/&lt;/g, "<").replace(/&gt;/g, ">");
    return JSON.parse(text);
  }

  function baseMap(id, page) {
    var map = L.map(id, { attributionControl: true });
    map.attributionControl.setPrefix(false);
    L.tileLayer(page.basemap, {
      maxZoom: 18,
      attribution: "底图：江门市行政区划（本平台） / base: Jiangmen regions (this platform)",
    }).addTo(map);
    return map;
  }

  function bboxBounds(b) {
    return L.latLngBounds([b[1], b[0]], [b[3], b[2]]);
  }

  function featureLink(itemsPath, feature, titleField) {
    var a = document.createElement("a");
    a.href = itemsPath + "/" + encodeURIComponent(feature.id) + "?f=html";
    var props = feature.properties || {};
    a.textContent = String(titleField && props[titleField] != null ? props[titleField] : feature.id);
    return a;
  }

  function itemsMap(page) {
    var node = document.getElementById("items-map");
    var data = page.data;
    if (!node) return null;
    var features = (data.features || []).filter(function (f) { return f.geometry; });
    if (!features.length) { // a table resource, or nothing to draw: no map
      node.hidden = true;
      return null;
    }
    var map = baseMap(node, page);
    var layer = L.geoJSON({ type: "FeatureCollection", features: features }, {
      pointToLayer: function (f, latlng) {
        return L.circleMarker(latlng, { radius: 6, color: "#c0392b", weight: 2, fillOpacity: 0.6 });
      },
      style: function () { return { color: "#c0392b", weight: 2, fillOpacity: 0.25 }; },
      onEachFeature: function (f, l) {
        l.bindPopup(function () { return featureLink(data.items_path, f, data.title_field); });
      },
    }).addTo(map);
    map.fitBounds(layer.getBounds(), { maxZoom: 15, padding: [20, 20] });
    return map;
  }

  function limitSelector() {
    var select = document.getElementById("limits");
    if (!select) return;
    var params = new URL(document.location).searchParams;
    select.value = params.get("limit") || select.getElementsByTagName("option")[0].value;
    select.addEventListener("change", function (ev) {
      var query = new URL(document.location).searchParams;
      query.set("limit", ev.target.value);
      query.delete("offset");
      document.location.search = query.toString();
    });
  }

  function recordsSearch(page, map) {
    var form = document.getElementById("searchForm");
    if (!form) return;
    function submit(ev) {
      ev.preventDefault();
      var query = [];
      var q = document.getElementById("q").value;
      var begin = document.getElementById("datetime_begin").value;
      var end = document.getElementById("datetime_end").value;
      if (q) query.push("q=" + encodeURIComponent(q));
      var datetime = (begin ? begin + "T00:00:00Z" : "..") + "/" + (end ? end + "T23:59:59Z" : "..");
      if (datetime !== "../..") query.push("datetime=" + encodeURIComponent(datetime));
      if (map && document.getElementById("spatial_filter_check").checked) {
        var b = map.getBounds();
        query.push("bbox=" + [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]
          .map(function (v) { return v.toFixed(6); }).join(","));
      }
      document.location.href = page.data.items_path + (query.length ? "?" + query.join("&") : "");
    }
    form.addEventListener("submit", submit);
  }

  function itemMap(page) {
    var node = document.getElementById("items-map");
    var feature = page.data.feature;
    if (!node || !feature || !feature.geometry) {
      if (node) node.hidden = true;
      return;
    }
    var map = baseMap(node, page);
    var layer = L.geoJSON(feature, {
      pointToLayer: function (f, latlng) {
        return L.circleMarker(latlng, { radius: 7, color: "#c0392b", weight: 2, fillOpacity: 0.6 });
      },
      style: function () { return { color: "#c0392b", weight: 2, fillOpacity: 0.25 }; },
    }).addTo(map);
    map.fitBounds(layer.getBounds(), { maxZoom: 15, padding: [20, 20] });
  }

  function collectionMap(page) {
    var node = document.getElementById("collection-map");
    if (!node) return;
    var map = baseMap(node, page);
    var bounds = bboxBounds(page.data.bbox);
    L.rectangle(bounds, { color: "#1f5fa8", weight: 2, fill: false }).addTo(map);
    map.fitBounds(bounds, { padding: [20, 20] });
  }

  function tilesPage(page) {
    var select = document.getElementById("tilingScheme");
    if (select) {
      var scheme = new URL(document.location).searchParams.get("scheme") || select.value;
      var link = document.getElementById("metadata_link");
      if (scheme) {
        select.value = scheme;
        link.href = select.getAttribute("data-metadata-base") + scheme + "/metadata";
      }
      select.addEventListener("change", function (ev) {
        document.location.search = "scheme=" + encodeURIComponent(ev.target.value);
      });
    }
    var node = document.getElementById("items-map");
    if (!node) return;
    var map = baseMap(node, page);
    L.tileLayer(page.data.map_tiles, { maxZoom: page.data.maxzoom || 18, opacity: 0.85 }).addTo(map);
    var b = page.data.bounds;
    map.fitBounds(b ? bboxBounds(b) : L.latLngBounds([21.45, 111.98], [22.87, 113.26]));
  }

  var page = pageData();
  limitSelector();
  if (!page) return;
  if (page.kind === "items") {
    recordsSearch(page, itemsMap(page));
  } else if (page.kind === "item") {
    itemMap(page);
  } else if (page.kind === "collection") {
    collectionMap(page);
  } else if (page.kind === "tiles") {
    tilesPage(page);
  }
})();
