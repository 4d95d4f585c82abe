"""``policyloop score --policy VERSION --input URI --output URI``: batch inference.

The registry and the policy name are the learner's settings (``--registry``, ``--policy-name``),
so the version scored is the one the learner published, loaded and sha256-checked through the
registry's read side. ``[interop] batch_rows`` states go through the policy per call. What is
read and written: ``services/interop/score.py``.
"""

from __future__ import annotations

import click

from services.cli.context import settings_from_context

__all__ = ["score"]


@click.command("score")
@click.option("--policy", "version", required=True, metavar="VERSION",
              help="Registry version to run (e.g. v3), or 'current'.")  # fmt: skip
@click.option("--input", "input_uri", required=True, help="Delta table or .parquet of states.")
@click.option("--output", "output_uri", required=True, help="Delta table, or a .parquet file.")
@click.option("--policy-name", default=None, help="Default: learner.policy_name.")
@click.option("--registry", "registry_uri", default=None, help="Default: learner.registry_uri.")
@click.option("--mode", type=click.Choice(["sample", "greedy"]), default="sample",
              show_default=True, help="Draw the action from the probabilities, or take the "
              "most probable.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draws.")
@click.option("--keep", default=None, help="More input columns to copy, comma separated.")
@click.option("--overwrite", is_flag=True, default=False, help="Replace an existing output.")
@click.option("--batch-rows", type=click.IntRange(min=1), default=None)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch threads (default: interop.score_threads, else torch's own).")  # fmt: skip
@click.pass_context
def score(
    ctx: click.Context,
    /,
    version: str,
    input_uri: str,
    output_uri: str,
    policy_name: str | None,
    registry_uri: str | None,
    mode: str,
    seed: int,
    keep: str | None,
    overwrite: bool,
    batch_rows: int | None,
    threads: int | None,
) -> None:
    """Score a table of states with a registry version: action, propensity, action_probs."""
    from services.interop.progress import RowsProgress
    from services.interop.score import ScoreInputError, score_states
    from services.registry.errors import RegistryError

    settings = settings_from_context(
        ctx,
        {
            "learner": {"policy_name": policy_name, "registry_uri": registry_uri},
            "interop": {"batch_rows": batch_rows, "score_threads": threads},
        },
    )
    try:
        with RowsProgress(f"score {version}") as progress:
            result = score_states(
                settings.learner.registry_uri,
                settings.learner.policy_name,
                None if version == "current" else version,
                input_uri,
                output_uri,
                batch_rows=settings.interop.batch_rows,
                mode=mode,  # type: ignore[arg-type]
                seed=seed,
                keep=None if keep is None else [k.strip() for k in keep.split(",") if k.strip()],
                overwrite=overwrite,
                threads=settings.interop.score_threads,
                progress=progress,
            )
    except (RegistryError, ScoreInputError, FileNotFoundError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"scored {result.rows} rows with {result.policy_name} {result.version} (sha256 verified) "
        f"into {result.output} in {result.seconds:.1f} s "
        f"({result.rows / max(result.seconds, 1e-9):,.0f} rows/s)"
    )
