"""What every command-line tool shares: the config arguments and one-line errors.

Bad input raises ``ValueError`` (or ``OSError``) somewhere below; ``run`` turns it into
one ``error: ...`` line and exit code 2. ``--debug`` shows the full traceback instead.
"""
import argparse
import signal
import sys
from typing import Callable, Sequence

__all__ = ["run", "config_parser", "check_minimums"]


def config_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments every config-driven tool takes: ``-c FILE``, repeatable ``-o KEY=VALUE``
    and ``--debug``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="YAML config (PaddleClas schema)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. -o Global.epochs=5 (repeatable)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def check_minimums(args: argparse.Namespace, minimums: dict) -> None:
    """Raise ``ValueError`` naming the first option below its minimum, e.g.
    ``check_minimums(args, {"topk": 1, "warmup": 0})``; options not given (``None``) pass."""
    for name, minimum in minimums.items():
        value = getattr(args, name)
        if value is not None and value < minimum:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {minimum}, got {value}")


def run(main: Callable[[], object], held_signals: Sequence[int] = ()) -> None:
    """Call ``main()`` and exit with its return code (0 for ``None``), turning errors into one line.

    SIGINT and SIGTERM both raise ``KeyboardInterrupt`` (so saves complete and logs close)
    and end the tool with "interrupted" and exit code 130; ``held_signals`` are those a tool
    received before it got here (while importing Paddle), acted on before ``main`` starts."""
    debug = "--debug" in sys.argv
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.default_int_handler)
        if held_signals:
            raise KeyboardInterrupt
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
