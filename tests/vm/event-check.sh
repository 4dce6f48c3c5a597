#!/bin/sh
# The kernel matrix's event check, run in the guest (and runnable on a host): starts
# `rampart sensor`, makes at least one event of every kind listed below (busybox for
# the shell-level ones, guest-events for the rest), stops the sensor and prints one
# line: `KM events seen=N missing=KIND,...`. Exits 1 if a kind is missing.
# Usage: event-check.sh RAMPART GUEST_EVENTS WORKDIR
set -u
RAMPART=$1
GUEST_EVENTS=$2
W=$3
mkdir -p "$W"
out=$W/events.json
log=$W/sensor.log
rm -f "$out" "$log"
t0=$(cut -d' ' -f1 /proc/uptime)
"$RAMPART" --log info sensor --no-docker -o "$out" >"$log" 2>&1 &
sensor=$!
# Under TCG the sensor takes seconds to verify and attach its programs: 6.1 about 8 s,
# 6.12 about 100 s on a quiet host (its verifier walks ~57x the instructions) and well
# over two minutes when the host is busy, so it gets up to ten.
i=0
until grep -q "sensor running" "$log" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 3000 ] || ! kill -0 $sensor 2>/dev/null; then
		echo "KM events sensor did not start:"; sed 's/^/KM   /' "$log"
		kill $sensor 2>/dev/null
		exit 1
	fi
	sleep 0.2
done
# The hook taken, as the sensor logs it (the sys_exit choice is logged in words).
hook=$(sed -n 's/.*hook=\([A-Za-z_]*\).*/\1/p' "$log" | head -n1)
[ -z "$hook" ] && grep -q "come from the sys_exit tracepoint" "$log" && hook=SysExit
echo "KM hook=${hook:-unknown}"
# Where 32-bit syscalls are hooked, and any hook or entry point the kernel refused.
echo "KM compat=$(sed -n 's/.*compat_hook=\([A-Za-z_]*\).*/\1/p' "$log" | head -n1)"
grep -a "refused" "$log" | sed 's/^/KM refused /'
echo "KM sensor started in $(awk -v a="$t0" '{printf "%.1f", $1 - a}' /proc/uptime) s"

# process: exec, fork, exit, exec_failed (no execute bit).
/bin/true
printf '#!/bin/sh\n' >"$W/noexec"
chmod 644 "$W/noexec"
"$W/noexec" 2>/dev/null
# file: open, write, chmod, chown, truncate, link, rename, unlink.
cat /etc/hostname >/dev/null
echo data >"$W/f1"
chmod 600 "$W/f1"
chown 0:0 "$W/f1"
truncate -s 0 "$W/f1"
ln "$W/f1" "$W/f2"
mv "$W/f2" "$W/f3"
rm -f "$W/f1" "$W/f3"
# kernel: mount, umount, namespace, chroot.
mkdir -p "$W/mnt"
mount -t tmpfs km "$W/mnt" && umount "$W/mnt"
unshare -m /bin/true
chroot / /bin/true
# net, privilege, the rest of kernel and file, process_rename.
"$GUEST_EVENTS"
sleep 2
kill -TERM $sensor
wait $sensor

missing=""
seen=0
for k in exec fork exit exec_failed process_rename \
	file_open file_unlink file_rename file_link file_chmod file_chown file_truncate file_open_by_handle \
	net_connect net_accept net_bind net_listen dns_query socket fd_dup \
	set_id capset \
	ptrace mount umount namespace module_load bpf memfd_create proc_mem_write process_vm io_uring chroot; do
	if grep -q "\"kind\":\"$k\"" "$out"; then
		seen=$((seen + 1))
	else
		missing="$missing${missing:+,}$k"
	fi
done
echo "KM events seen=$seen missing=${missing:-none}"
[ -z "$missing" ]
