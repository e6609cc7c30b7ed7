"""``embedprobe convert-weights``: turn a pickled checkpoint into ``.safetensors`` once, so it is never unpickled again."""

from __future__ import annotations

from pathlib import Path

import typer

from embedprobe.cli.common import console, friendly, warnings_as_lines
from embedprobe.extractors.conversion import convert_to_safetensors


def register(app: typer.Typer) -> None:
    @app.command("convert-weights")
    @friendly
    def convert_weights(
        source: Path = typer.Argument(..., help="A .pth/.pt/.bin checkpoint, or a model folder with pytorch_model.bin."),
        output: Path = typer.Argument(
            None, help="The .safetensors file to write (default: beside the source, same stem; for a "
                       "folder, model.safetensors in it), where the loaders look for it first."),
        trust_pickle: bool = typer.Option(
            False, "--trust-pickle",
            help="Admit Python classes beyond the safe allow-list (their code runs once, here); "
                 "pickles naming functions are refused even then."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    ) -> None:
        """Convert a checkpoint to safetensors once (loaded under the safe-unpickling rules), so it is never unpickled again."""
        with warnings_as_lines():
            done = convert_to_safetensors(source, output, trust_pickle=trust_pickle, overwrite=overwrite)
        entry = f" from its '{done.entry}' entry" if done.entry else ""
        dropped = f"; left out (not tensors): {', '.join(done.dropped)}" if done.dropped else ""
        console.print(f"[green]wrote[/] {done.path}: {done.n_tensors} tensors{entry}{dropped}")
