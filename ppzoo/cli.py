"""What every command-line tool shares: quiet start-up and one-line errors.

Bad input raises ``ValueError`` (or ``OSError``) somewhere below; ``run`` turns it into
one ``error: ...`` line and exit code 2. ``--debug`` shows the full traceback instead.
"""
import sys
from typing import Callable


__all__ = ["run"]


def run(main: Callable[[], object]) -> None:
    """Call ``main()`` and exit with its return code (0 for ``None``), turning errors into one line."""
    debug = "--debug" in sys.argv
    try:
        code = main()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        sys.exit(0)
    except (ValueError, OSError) as e:
        if debug:
            raise
        message = str(e).strip() or type(e).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # a bug, not bad input: still one line unless --debug
        if debug:
            raise
        print(f"error: unexpected {type(e).__name__}: {e} (rerun with --debug for the traceback)", file=sys.stderr)
        sys.exit(1)
    sys.exit(code or 0)
