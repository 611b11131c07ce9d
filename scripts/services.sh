#!/usr/bin/env bash
# Start the local servers the integration tests need, if they are not already up.
# The machine normally starts them before a session and before CI; this is the fallback.
set -u
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! up 6379; then
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
if ! up 5432; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
# A three-primary Redis Cluster on 7301-7303 for the redis+cluster:// state store's tests.
bash "$(dirname "$0")/redis-cluster.sh" || echo "services: the local Redis Cluster did not start" >&2
for i in $(seq 1 30); do
  if up 6379 && up 5432; then exit 0; fi
  sleep 1
done
up 6379 || echo "services: Redis is still down on 127.0.0.1:6379" >&2
up 5432 || echo "services: PostgreSQL is still down on 127.0.0.1:5432" >&2
exit 0
