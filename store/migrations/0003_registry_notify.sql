-- Registry changes reach every process through LISTEN/NOTIFY on channel `stadtpuls_registry`
-- (payload: the table name), so an `api` process rebuilds its geo index as soon as an import,
-- an admin request or a network location event (in another process) commits.
--
-- Devices: only changes that bump `updated_at` count (the writer's last-seen/battery updates do
-- not, and must not wake every API process on every batch). PostgreSQL folds identical
-- notifications of one transaction into one, so an import of 10 000 devices sends one.

CREATE FUNCTION stadtpuls_notify_registry() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('stadtpuls_registry', TG_TABLE_NAME);
  RETURN NULL;
END;
$$;

CREATE TRIGGER devices_registry_insert_delete
  AFTER INSERT OR DELETE ON devices
  FOR EACH ROW EXECUTE FUNCTION stadtpuls_notify_registry();

CREATE TRIGGER devices_registry_update
  AFTER UPDATE ON devices
  FOR EACH ROW WHEN (OLD.updated_at IS DISTINCT FROM NEW.updated_at)
  EXECUTE FUNCTION stadtpuls_notify_registry();

CREATE TRIGGER parking_sites_registry
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON parking_sites
  FOR EACH STATEMENT EXECUTE FUNCTION stadtpuls_notify_registry();

CREATE TRIGGER buildings_registry
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON buildings
  FOR EACH STATEMENT EXECUTE FUNCTION stadtpuls_notify_registry();

CREATE TRIGGER rooms_registry
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON rooms
  FOR EACH STATEMENT EXECUTE FUNCTION stadtpuls_notify_registry();
