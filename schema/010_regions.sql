-- Region outlines (GB/T 2260 codes) for the page's map: drawn when the centre configured no
-- background map (haulwatch web --map-style / --map-tiles), so that an isolated network still
-- shows where its regions are. Imported with `haulwatch regions import FILE.geojson`; the web
-- process shows a user the outlines whose code lies in the user's regions (hw_region_pattern).
CREATE TABLE regions (
    code        char(6) PRIMARY KEY CHECK (code ~ '^[0-9]{6}$'),
    name        text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 128),
    geom        geometry(MultiPolygon, 4326) NOT NULL CHECK (ST_IsValid(geom)),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
