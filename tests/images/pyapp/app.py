# The workload of rampart-test/pyapp:1: imports urllib3 (installed, vulnerable) and
# never bottle (installed, vulnerable too), then stays up so the scanner and the
# in-use map can look at it.
import time

import urllib3

print("pyapp up, urllib3", urllib3.__version__, flush=True)
while True:
    time.sleep(3600)
