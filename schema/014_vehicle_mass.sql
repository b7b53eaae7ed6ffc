-- The registry's declared masses and axle count (issue 9, the 大吨小标 audit: README, "Crackdown
-- lists"): what the vehicle's registration certificate says, imported with the registry CSV.
-- NULL: not declared. `haulwatch report registry-audit` compares them with each other and with
-- the GB 1589-2016 limit for the axle count; the ranges here only keep out what no road vehicle
-- has (a typo of one digit too many), the audit judges the rest.
ALTER TABLE vehicles
    ADD COLUMN axles          smallint CHECK (axles BETWEEN 2 AND 12),
    ADD COLUMN total_mass_kg  integer CHECK (total_mass_kg BETWEEN 100 AND 200000),
    ADD COLUMN curb_mass_kg   integer CHECK (curb_mass_kg BETWEEN 100 AND 200000),
    ADD COLUMN rated_load_kg  integer CHECK (rated_load_kg BETWEEN 0 AND 200000);

-- The import of both front ends, as in 011 with the four columns added: the same checks, the same
-- answer. A file without one of the columns sets it empty, as it does for vin or enterprise: the
-- file is the registry as it is.
CREATE OR REPLACE FUNCTION hw_admin_import_vehicles(p_rows jsonb, p_scope text[], p_user bigint,
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
            enterprise text, permit_no text, permit_expires date, status text,
            axles smallint, total_mass_kg integer, curb_mass_kg integer, rated_load_kg integer);
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
        UPDATE vehicles v SET terminal_id = NULL FROM hw_admin_import s
         WHERE (v.plate, v.plate_colour) = (s.plate, s.plate_colour)
           AND v.terminal_id IS DISTINCT FROM s.terminal_id AND v.terminal_id IS NOT NULL;
        INSERT INTO vehicles (plate, plate_colour, vin, class_code, terminal_id, region,
                              enterprise, permit_no, permit_expires, status, axles,
                              total_mass_kg, curb_mass_kg, rated_load_kg)
        SELECT plate, plate_colour, vin, class_code, terminal_id, region, enterprise, permit_no,
               permit_expires, coalesce(status, 'active'), axles, total_mass_kg, curb_mass_kg,
               rated_load_kg FROM hw_admin_import ORDER BY line
        ON CONFLICT (plate, plate_colour) DO UPDATE SET
            vin = EXCLUDED.vin, class_code = EXCLUDED.class_code,
            terminal_id = EXCLUDED.terminal_id, region = EXCLUDED.region,
            enterprise = EXCLUDED.enterprise, permit_no = EXCLUDED.permit_no,
            permit_expires = EXCLUDED.permit_expires, status = EXCLUDED.status,
            axles = EXCLUDED.axles, total_mass_kg = EXCLUDED.total_mass_kg,
            curb_mass_kg = EXCLUDED.curb_mass_kg, rated_load_kg = EXCLUDED.rated_load_kg;
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
