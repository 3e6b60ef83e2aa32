#!/bin/sh
# One database and one login role per service, plus the registry's; a role reaches only
# its own database. Passwords come from the environment (see docker-compose.yml).
set -eu
for db in shop inventory billing logistics crm schemaregistry; do
  pw=$(printenv "PW_$db")
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE ROLE "$db" LOGIN PASSWORD '$pw';
CREATE DATABASE "$db" OWNER "$db";
REVOKE ALL ON DATABASE "$db" FROM PUBLIC;
SQL
done
