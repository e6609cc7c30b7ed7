"""The ``embedprobe`` command. Each sub-command lives in its own module of this package."""

from __future__ import annotations

import typer

from embedprobe import __version__
from embedprobe.cli import acoustics, bench, domain, extract, info, listing, probe, report, verify

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


for module in (listing, extract, info, verify, probe, report, acoustics, domain, bench):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
