#!/usr/bin/env bash
# A local three-primary Redis Cluster on 127.0.0.1:7301-7303 (no persistence), for the
# cluster-safe state store's tests and for trying `redis+cluster://` by hand. Idempotent:
# nodes already up are left alone; the cluster is created once.
#   bash scripts/redis-cluster.sh          # start (and create) it
#   bash scripts/redis-cluster.sh stop     # stop the nodes
set -u
PORTS="7301 7302 7303"
DIR="${CHATPERSONA_REDIS_CLUSTER_DIR:-/tmp/chatpersona-redis-cluster}"
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ "${1:-start}" = "stop" ]; then
  for p in $PORTS; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
  exit 0
fi
command -v redis-server >/dev/null || { echo "redis-cluster: redis-server is not installed" >&2; exit 1; }
for p in $PORTS; do
  if ! up "$p"; then
    mkdir -p "$DIR/$p"
    rm -f "$DIR/$p/nodes.conf"
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "$DIR/$p/nodes.conf" --cluster-node-timeout 5000 \
      --save "" --appendonly no --dir "$DIR/$p" --daemonize yes \
      --logfile "$DIR/$p/redis.log" >/dev/null
  fi
done
for i in $(seq 1 50); do
  ok=1; for p in $PORTS; do up "$p" || ok=0; done
  [ "$ok" = 1 ] && break; sleep 0.1
done
if ! redis-cli -p 7301 cluster info 2>/dev/null | grep -q "cluster_state:ok"; then
  known=$(redis-cli -p 7301 cluster info 2>/dev/null | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')
  if [ "${known:-1}" -lt 3 ]; then
    redis-cli --cluster create 127.0.0.1:7301 127.0.0.1:7302 127.0.0.1:7303 \
      --cluster-replicas 0 --cluster-yes >/dev/null
  fi
  for i in $(seq 1 100); do
    redis-cli -p 7301 cluster info 2>/dev/null | grep -q "cluster_state:ok" && break
    sleep 0.1
  done
fi
redis-cli -p 7301 cluster info | grep -q "cluster_state:ok" || {
  echo "redis-cluster: the cluster on 127.0.0.1:7301-7303 did not come up" >&2; exit 1; }
