#!/bin/bash
# Ordinary container work for the recorded replay corpus (see benches/data/README.md).
set -u
D=rampart-test/debian:12
B=rampart-test/busybox:latest
docker run -d --rm --name rec-web $D python3 -m http.server 8000 --bind 127.0.0.1 -d /usr/share/doc >/dev/null
sleep 2
# Health checks / client load against the web server (same network namespace: loopback only).
docker run -d --rm --name rec-client --network container:rec-web $D bash -c '
  for i in $(seq 1 400); do
    curl -s -o /dev/null http://127.0.0.1:8000/ ; curl -s http://127.0.0.1:8000/bash/copyright >/dev/null
    curl -sf -o /dev/null http://127.0.0.1:8000/healthz || true
    sleep 0.1
  done' >/dev/null
# A busybox sidecar: shell loops, wget, file reads, log appends and rotation.
docker run -d --rm --name rec-bb --network container:rec-web $B sh -c '
  mkdir -p /var/log/app
  for i in $(seq 1 150); do
    wget -q -O /dev/null http://127.0.0.1:8000/ ; cat /etc/passwd >/dev/null; ls /bin >/dev/null
    echo "$i request ok" >> /var/log/app/app.log
    if [ $((i % 20)) -eq 0 ]; then mv /var/log/app/app.log /var/log/app/app.log.1; gzip -f /var/log/app/app.log.1; fi
    tar cf /tmp/etc.tar /etc 2>/dev/null; rm -f /tmp/etc.tar
    sleep 0.2
  done' >/dev/null
# An app that re-reads its config and writes its own log (python).
docker run -d --rm --name rec-app $D python3 -c '
import os, time, json
os.makedirs("/etc/app", exist_ok=True)
json.dump({"port": 8080, "debug": False}, open("/etc/app/config.json", "w"))
for i in range(300):
    cfg = json.load(open("/etc/app/config.json"))
    with open("/tmp/app.log", "a") as f:
        f.write("tick %d %s\n" % (i, cfg["port"]))
    os.stat("/etc/hostname"); open("/etc/hosts").read()
    time.sleep(0.1)
' >/dev/null
# An operator poking around with shells and package queries.
for round in 1 2 3 4 5; do
  docker run --rm $D bash -c '
    dpkg -l | wc -l; dpkg -L bash >/dev/null; dpkg -S /bin/ls; apt-cache policy bash >/dev/null
    apt list --installed 2>/dev/null | head -n 20 >/dev/null; apt-cache show coreutils >/dev/null
    cat /etc/os-release; ls -la /etc >/dev/null; id; whoami; uname -a; ps aux >/dev/null; date
    find /usr/share/doc -name copyright | head -n 40 | xargs cat >/dev/null
    grep -r root /etc/passwd /etc/group >/dev/null; env | sort >/dev/null; df -h >/dev/null
    perl -e "print 1+1" >/dev/null; python3 -c "import json,sys; print(sys.version)" >/dev/null
    sh -c "echo nested shell; ls /tmp"; tar czf /tmp/doc.tgz /usr/share/doc/bash; rm -f /tmp/doc.tgz
  ' >/dev/null
  docker run --rm $B sh -c 'ls -la /; cat /proc/cpuinfo | head -5; ps; df; free; uname -a; echo hi | md5sum; find /etc -type f | head; sleep 0.5' >/dev/null
  sleep 2
done
sleep 10
docker rm -f rec-web rec-client rec-bb rec-app >/dev/null 2>&1
