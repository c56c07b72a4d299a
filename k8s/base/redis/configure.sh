#!/bin/sh
# Writes this pod's redis.conf and sentinel.conf under /data/conf (the init container).
# The master is whoever the other pods' sentinels name; pod 0 when none answers (a fresh start).
set -eu
headless="paymesh-redis-headless.${POD_NAMESPACE}.svc.${CLUSTER_DOMAIN:-cluster.local}"
self="${POD_NAME}.${headless}"
master=""
for i in 0 1 2; do
    [ "paymesh-redis-$i" = "$POD_NAME" ] && continue
    answer=$(timeout 3 redis-cli -h "paymesh-redis-$i.${headless}" -p 26379 \
        sentinel get-master-addr-by-name paymesh 2>/dev/null | head -n 1) || answer=""
    case "$answer" in
    paymesh-redis-*) master="$answer"; break ;;
    esac
done
[ -n "$master" ] || master="paymesh-redis-0.${headless}"
echo "configure: I am ${self}; master is ${master}"

mkdir -p /data/conf
cat >/data/conf/redis.conf <<CONF
port 6379
dir /data
protected-mode no
appendonly yes
appendfsync everysec
# The revocation list lives here too: never evict, refuse writes when full (paymesh then
# falls back to PostgreSQL) — leave headroom under the container's memory limit.
maxmemory ${REDIS_MAXMEMORY:-800mb}
maxmemory-policy noeviction
requirepass ${REDISCLI_AUTH}
masterauth ${REDISCLI_AUTH}
replica-announce-ip ${self}
CONF
if [ "$master" != "$self" ]; then
    echo "replicaof ${master} 6379" >>/data/conf/redis.conf
fi

# Sentinel rewrites its file as the cluster changes; it is written afresh at each start.
cat >/data/conf/sentinel.conf <<CONF
port 26379
dir /data
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${self}
requirepass ${REDISCLI_AUTH}
sentinel sentinel-pass ${REDISCLI_AUTH}
sentinel monitor paymesh ${master} 6379 2
sentinel auth-pass paymesh ${REDISCLI_AUTH}
sentinel down-after-milliseconds paymesh 5000
sentinel failover-timeout paymesh 60000
sentinel parallel-syncs paymesh 1
CONF
