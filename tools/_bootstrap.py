"""What every tool does before it imports ppzoo.

Puts the repository on ``sys.path`` (the tools run from a checkout), and holds Ctrl-C and
``kill`` while Paddle loads: raised inside Paddle's import they would read as a broken
install. ``ppzoo.utils.cli.run(main, held_signals=HELD)`` acts on a held signal first, as
an interruption.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HELD = []  # signals that arrived while ppzoo and Paddle were being imported
for _sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_sig, lambda signum, frame: HELD.append(signum))
