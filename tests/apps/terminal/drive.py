"""Runs a program on a terminal of its own, as a person at a keyboard would: the terminal is
43 rows by 132 columns, lines are typed once the program has shown what a step waits for,
and what it showed and its exit code are printed at the end.

Usage: drive.py SCRIPT PROGRAM [ARGS...], SCRIPT a JSON list of [wait_for, type] steps:
wait until the output holds `wait_for` (empty: do not wait), then type `type`.
"""
import fcntl
import json
import os
import pty
import select
import struct
import sys
import termios
import time

DEADLINE = 20.0

steps = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    # The child's terminal is sized before the program starts, so it reads this size.
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 43, 132, 0, 0))
    os.execv(sys.argv[2], sys.argv[2:])

seen = b""


def read_some(timeout):
    global seen
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return True
    try:
        chunk = os.read(fd, 4096)
    except OSError:  # EIO: the program and everything it started closed the terminal
        return False
    if not chunk:
        return False
    seen += chunk
    return True


for wait_for, text in steps:
    until = time.monotonic() + DEADLINE
    while wait_for.encode() not in seen:
        if time.monotonic() > until or not read_some(0.1):
            sys.stdout.write(seen.decode(errors="replace"))
            sys.exit(f"drive.py: {wait_for!r} never showed")
    os.write(fd, text.encode())
until = time.monotonic() + DEADLINE
while time.monotonic() < until and read_some(0.1):
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
print(f"\nexit={os.waitstatus_to_exitcode(status)}")
