#!/bin/sh
# Prints a .env for docker-compose.yml with fresh random secrets:
#   deploy/compose/gen-env.sh > .env
# .env is ignored by git; keep it out of the repository.
set -eu
pw() { head -c 18 /dev/urandom | base64 | tr -d '/+=' ; }
echo "ORDERFLOW_PG_PASSWORD=$(pw)"
for db in shop inventory billing logistics crm schemaregistry; do echo "PW_$db=$(pw)"; done
echo "ORDERFLOW_ADMIN_TOKEN=$(pw)$(pw)"
echo "GRAFANA_ADMIN_PASSWORD=$(pw)"
