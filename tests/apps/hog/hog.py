"""Tries to take 200 MB once, says whether it got it, then idles: shows a memory limit."""

import time

try:
    block = bytearray(200 * 1024 * 1024)
    print("allocated 200 MB", flush=True)
except MemoryError:
    print("allocation refused", flush=True)
time.sleep(3600)
