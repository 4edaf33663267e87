-- The control plane's own roles inside each instance (toygres_admin, toygres_monitor), with
-- their passwords sealed like the owner's, and whether the instance has them yet.
ALTER TABLE instances
    -- Sealed with the server's secret key; NULL for instances made before these roles existed
    -- until the upgrade gives them some.
    ADD COLUMN sealed_admin_password TEXT,
    ADD COLUMN sealed_monitor_password TEXT,
    -- 0: the owner is the instance's bootstrap superuser (made before this change; the upgrade
    --    in the reconciler converts it); 1: toygres_admin, toygres_monitor, and an owner that
    --    is no superuser.
    ADD COLUMN roles_version INTEGER NOT NULL DEFAULT 0;
