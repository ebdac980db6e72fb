"""Idles until a file named `grow` appears in its directory (`lakefly machines exec ID --
touch grow`), then fills 200 MB and says so: shows a memory limit."""

import os
import time

print("waiting for ./grow", flush=True)
while not os.path.exists("grow"):
    time.sleep(0.05)
# Written, not only reserved: the pages are resident.
block = bytearray(b"\x01" * (200 * 1024 * 1024))
print("allocated 200 MB", flush=True)
time.sleep(3600)
