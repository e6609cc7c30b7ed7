"""The ``embedprobe`` command. Each sub-command lives in its own module of this package."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

INTERRUPTED = "interrupted: nothing was done; run the same command again.\n"
_held: list[int] = []


def _hold(signum: int, frame: object) -> None:
    _held.append(signum)


try:  # Ctrl-C while the modules load (the first ~0.3 s) ends like any other interruption
    import typer

    from embedprobe import __version__
    from embedprobe.cli import (
        acoustics,
        bench,
        convert,
        domain,
        extract,
        info,
        listing,
        probe,
        report,
        verify,
    )

    if Path(sys.argv[0]).stem == "embedprobe":
        # The console script runs a line of its own between importing this module and calling
        # main(); a Ctrl-C there is held and answered by main().
        signal.signal(signal.SIGINT, _hold)
except KeyboardInterrupt:
    sys.stderr.write(INTERRUPTED)
    raise SystemExit(130) from None

app = typer.Typer(
    name="embedprobe",
    help="How much emotion does a frozen audio embedding carry, and does it survive a change of corpus?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"embedprobe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """embedprobe: extract embeddings once, probe them across corpora, report."""
    import warnings

    # A warning is a sentence for the user (a damaged clip, a missing part): one line, no source line.
    warnings.formatwarning = lambda message, category, *_a, **_k: f"warning: {message}\n"


for module in (listing, extract, info, probe, report, acoustics, domain, bench, convert, verify):
    module.register(app)


def main() -> None:
    """Run the command; a Ctrl-C that no command handler saw (while typer builds the command
    or parses the options) still prints the "interrupted" line and exits with 130."""
    try:
        if signal.getsignal(signal.SIGINT) is _hold:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if _held:
            raise KeyboardInterrupt
        app()
    except KeyboardInterrupt:
        sys.stderr.write(INTERRUPTED)
        raise SystemExit(130) from None
    except SystemExit as e:  # typer turns a Ctrl-C during parsing into a silent Exit(130)
        if e.code == 130 and isinstance(getattr(e.__context__, "__cause__", None), KeyboardInterrupt):
            sys.stderr.write(INTERRUPTED)
        raise


if __name__ == "__main__":
    main()
