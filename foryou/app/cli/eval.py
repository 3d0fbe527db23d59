"""`foryou eval …`: evaluate trained models on the held-out split of an engagement log."""

from __future__ import annotations

from typing import Annotated

import typer

from foryou.app.cli.common import CheckpointDir, Logs, console, fail, group, print_metrics

app = group("Evaluate trained models on the held-out split.")


@app.command("ranker")
def eval_ranker_cmd(
    logs: Logs,
    model: CheckpointDir,
    markdown: Annotated[bool, typer.Option(help="Also print the per-action Markdown tables")] = False,
) -> None:
    """ROC-AUC, PR-AUC, RCE, calibration, NDCG vs oracle and baselines on the held-out split."""
    from phoenix.ranker.evaluate import evaluate_ranker, markdown_segments, markdown_table

    try:
        with console.status("scoring the held-out split (model, oracle, baselines)…"):
            ev = evaluate_ranker(logs, model)
    except (FileNotFoundError, ValueError) as e:
        fail(e)
    print_metrics("ranker evaluation", ev)
    if markdown:
        # plain print: the tables are meant to be pasted, without rich's wrapping
        print(markdown_table(ev))
        print()
        print(markdown_segments(ev))
    console.print(f"eval.json written to {model}")


@app.command("retrieval")
def eval_retrieval_cmd(logs: Logs, model: CheckpointDir) -> None:
    """recall@100/@1000 of held-out positives vs popularity, random and (worlds) the oracle's top-k."""
    from phoenix.retrieval.evaluate import evaluate_retrieval
    from world.retrieval_oracle import retrieval_oracle

    with console.status("evaluating retrieval…"):
        metrics = evaluate_retrieval(logs, model, oracle=retrieval_oracle(logs))
    print_metrics("retrieval evaluation", metrics)
