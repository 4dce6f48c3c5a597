#!/bin/sh
# One container, four loaders: node requires used-pkg, ruby requires used-gem, a jar is
# opened, and python3 imports ssl (ld.so maps libssl3's libraries; libsqlite3-0 is
# installed and never loaded). Each prints "<name> up" once loaded.
cd /app
node index.js &
ruby app.rb &
python3 open_jar.py &
python3 -c 'import ssl, time; print("ssl up", flush=True); time.sleep(1 << 30)' &
wait
