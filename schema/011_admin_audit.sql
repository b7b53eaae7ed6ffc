-- What admins change: users, the vehicle registry, zones. One row per change, with the user who
-- made it (user_id and the name as it was; NULL user_id and actor 'cli' for the command line),
-- what was done (action), to what (object: a user name, 'vehicles', 'zones') and the details.
CREATE TABLE admin_audit (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    user_id    bigint REFERENCES web_users (id),
    user_name  text NOT NULL CHECK (octet_length(user_name) <= 64),
    action     text NOT NULL CHECK (action IN ('user.add', 'user.disable', 'user.token',
                                                'registry.import', 'zones.import')),
    object     text NOT NULL CHECK (octet_length(object) <= 128),
    detail     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX admin_audit_at ON admin_audit (at);

-- The registry import of both front ends (haulwatch registry import and
-- POST /api/v1/admin/registry), one statement so that the web process's pooled connections can
-- run it atomically. p_rows: the checked rows of registry/registry_csv.c as a JSON array of
-- {line, plate, plate_colour, vin, class_code, terminal_id, region, enterprise, permit_no,
-- permit_expires, status}. p_scope: the LIKE patterns of the importer's regions ('{%}' for the
-- command line). Nobody changes what is not theirs: a row outside p_scope, or one that would
-- update a vehicle registered outside p_scope, refuses the whole import, as does a terminal
-- bound to a vehicle the file does not mention (importing would steal it; named only when that
-- vehicle is within p_scope). Returns {"errors": [{line, error}]} with nothing changed, or
-- {"rows", "inserted", "updated", "dry_run"}; a real import is audited.
CREATE FUNCTION hw_admin_import_vehicles(p_rows jsonb, p_scope text[], p_user bigint,
                                         p_actor text, p_dry_run boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    errs jsonb;
    n_rows integer;
    n_updated integer;
BEGIN
    CREATE TEMP TABLE hw_admin_import ON COMMIT DROP AS
        SELECT * FROM jsonb_to_recordset(p_rows) AS x(line integer, plate text,
            plate_colour smallint, vin text, class_code text, terminal_id text, region text,
            enterprise text, permit_no text, permit_expires date, status text);
    SELECT coalesce(jsonb_agg(jsonb_build_object('line', e.line, 'error', e.msg)
                              ORDER BY e.line, e.msg), '[]') INTO errs FROM (
        SELECT s.line, format('region %s is outside your regions', s.region) AS msg
          FROM hw_admin_import s WHERE NOT coalesce(s.region, '') LIKE ANY (p_scope)
        UNION ALL
        SELECT s.line, format('vehicle %s (colour %s) is registered in a region outside yours',
                              s.plate, s.plate_colour)
          FROM hw_admin_import s JOIN vehicles v USING (plate, plate_colour)
         WHERE NOT coalesce(v.region, '') LIKE ANY (p_scope)
        UNION ALL
        SELECT s.line, CASE WHEN coalesce(v.region, '') LIKE ANY (p_scope)
                  THEN format('terminal %s is bound to vehicle %s (colour %s), which is not in '
                              'this file; unbind it there first', s.terminal_id, v.plate,
                              v.plate_colour)
                  ELSE format('terminal %s is bound to a vehicle outside your regions',
                              s.terminal_id) END
          FROM hw_admin_import s JOIN vehicles v ON v.terminal_id = s.terminal_id
         WHERE (v.plate, v.plate_colour) <> (s.plate, s.plate_colour) AND NOT EXISTS
               (SELECT 1 FROM hw_admin_import o
                 WHERE (o.plate, o.plate_colour) = (v.plate, v.plate_colour))) e;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN jsonb_build_object('errors', errs);
    END IF;
    SELECT count(*) INTO n_rows FROM hw_admin_import;
    SELECT count(*) INTO n_updated FROM hw_admin_import JOIN vehicles USING (plate, plate_colour);
    IF NOT p_dry_run THEN
        -- Free the terminals that change hands inside the file first, so that the per-row
        -- unique check of the upsert does not depend on the order of the rows.
        UPDATE vehicles v SET terminal_id = NULL FROM hw_admin_import s
         WHERE (v.plate, v.plate_colour) = (s.plate, s.plate_colour)
           AND v.terminal_id IS DISTINCT FROM s.terminal_id AND v.terminal_id IS NOT NULL;
        INSERT INTO vehicles (plate, plate_colour, vin, class_code, terminal_id, region,
                              enterprise, permit_no, permit_expires, status)
        SELECT plate, plate_colour, vin, class_code, terminal_id, region, enterprise, permit_no,
               permit_expires, coalesce(status, 'active') FROM hw_admin_import ORDER BY line
        ON CONFLICT (plate, plate_colour) DO UPDATE SET
            vin = EXCLUDED.vin, class_code = EXCLUDED.class_code,
            terminal_id = EXCLUDED.terminal_id, region = EXCLUDED.region,
            enterprise = EXCLUDED.enterprise, permit_no = EXCLUDED.permit_no,
            permit_expires = EXCLUDED.permit_expires, status = EXCLUDED.status;
        INSERT INTO admin_audit (user_id, user_name, action, object, detail)
        VALUES (p_user, p_actor, 'registry.import', 'vehicles',
                jsonb_build_object('rows', n_rows, 'inserted', n_rows - n_updated,
                                   'updated', n_updated,
                                   'regions', (SELECT jsonb_agg(DISTINCT region)
                                                 FROM hw_admin_import)));
    END IF;
    DROP TABLE hw_admin_import;
    RETURN jsonb_build_object('rows', n_rows, 'inserted', n_rows - n_updated,
                              'updated', n_updated, 'dry_run', p_dry_run);
END $$;

-- The zones import of both front ends: p_zones is the checked features of
-- registry/zones_geojson.c as a JSON array of {index, name, kind, limit, expressway, classes
-- (a text[] literal or null), from, to, geojson (the geometry as text)}. Every geometry is
-- checked by PostGIS first (unreadable, invalid: {"errors": [{feature, name, error}]}, nothing
-- changed), then all are upserted by name. Returns {"zones", "dry_run"}; a real import is
-- audited.
CREATE FUNCTION hw_admin_import_zones(p_zones jsonb, p_user bigint, p_actor text,
                                      p_dry_run boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    z jsonb;
    g geometry;
    errs jsonb := '[]';
    n integer := 0;
BEGIN
    FOR z IN SELECT value FROM jsonb_array_elements(p_zones) LOOP
        BEGIN
            g := ST_Force2D(ST_SetSRID(ST_GeomFromGeoJSON(z->>'geojson'), 4326));
        EXCEPTION WHEN OTHERS THEN
            errs := errs || jsonb_build_object('feature', (z->>'index')::integer,
                'name', z->>'name', 'error', 'PostGIS cannot read the geometry: ' || SQLERRM);
            CONTINUE;
        END;
        IF NOT ST_IsValid(g) THEN
            errs := errs || jsonb_build_object('feature', (z->>'index')::integer,
                'name', z->>'name', 'error', 'invalid polygon: ' || ST_IsValidReason(g));
        END IF;
    END LOOP;
    IF jsonb_array_length(errs) > 0 THEN
        RETURN jsonb_build_object('errors', errs);
    END IF;
    n := jsonb_array_length(p_zones);
    IF NOT p_dry_run THEN
        INSERT INTO zones (name, kind, limit_kmh, is_expressway, classes, from_time, to_time,
                           geom)
        SELECT e->>'name', e->>'kind', (e->>'limit')::numeric, (e->>'expressway')::boolean,
               (e->>'classes')::text[], (e->>'from')::time, (e->>'to')::time,
               ST_Multi(ST_Force2D(ST_SetSRID(ST_GeomFromGeoJSON(e->>'geojson'), 4326)))
          FROM jsonb_array_elements(p_zones) e
        ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, limit_kmh = EXCLUDED.limit_kmh,
            is_expressway = EXCLUDED.is_expressway, classes = EXCLUDED.classes,
            from_time = EXCLUDED.from_time, to_time = EXCLUDED.to_time, geom = EXCLUDED.geom;
        INSERT INTO admin_audit (user_id, user_name, action, object, detail)
        VALUES (p_user, p_actor, 'zones.import', 'zones',
                jsonb_build_object('zones', n, 'names',
                    (SELECT jsonb_agg(e->>'name') FROM jsonb_array_elements(p_zones) e)));
    END IF;
    RETURN jsonb_build_object('zones', n, 'dry_run', p_dry_run);
END $$;
