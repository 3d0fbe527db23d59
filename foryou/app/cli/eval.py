"""`foryou eval …`: evaluate trained models on the held-out split of an engagement log."""

from __future__ import annotations

from typing import Annotated

import typer

from foryou.app.cli.common import AsJson, CheckpointDir, Logs, console, fail, group, print_json, print_metrics

app = group("Evaluate trained models on the held-out split.")


TestFile = Annotated[
    str,
    typer.Option(
        "--test",
        help="Leave-one-out test Parquet (user_id, post_id): HR@K / NDCG@K / MRR over every post, "
        "the user's history (LOGS) excluded, instead of the held-out split",
    ),
]
MaxUsers = Annotated[int, typer.Option(help="With --test: evaluate a random subset of test rows, 0 = all")]


def _print_loo(title: str, res: dict[str, object], as_json: bool = False) -> None:
    if as_json:
        print_json(res)
        return
    flat = {}
    for k, v in res.items():
        if isinstance(v, dict):
            flat.update({f"{k} {m}": x for m, x in v.items() if m != "test_cases"})
        else:
            flat[k] = v
    print_metrics(title, flat)


@app.command("ranker")
def eval_ranker_cmd(
    logs: Logs,
    model: CheckpointDir,
    markdown: Annotated[bool, typer.Option(help="Also print the per-action Markdown tables")] = False,
    test: TestFile = "",
    retrieval: Annotated[
        str, typer.Option(help="With --test: re-rank this retrieval model's top --rerank posts")
    ] = "",
    rerank: Annotated[int, typer.Option(help="With --test and --retrieval: posts re-ranked")] = 100,
    max_users: MaxUsers = 0,
    as_json: AsJson = False,
) -> None:
    """ROC-AUC, PR-AUC, RCE, calibration, NDCG vs oracle and baselines on the held-out split; with
    --test, leave-one-out HR@K / NDCG@K / MRR and the history ablation."""
    from phoenix.ranker.evaluate import evaluate_ranker, markdown_segments, markdown_table

    if test:
        from phoenix.leave_one_out import evaluate_loo

        try:
            with console.status("leave-one-out ranking of every test row…"):
                res = evaluate_loo(logs, test, retrieval or None, model, rerank, max_users)
        except (FileNotFoundError, ValueError) as e:
            fail(e)
        _print_loo("ranker leave-one-out evaluation", res, as_json)
        return

    try:
        with console.status("scoring the held-out split (model, oracle, baselines)…"):
            ev = evaluate_ranker(logs, model)
    except (FileNotFoundError, ValueError) as e:
        fail(e)
    if as_json:
        print_json(ev)  # every metric, as eval.json holds them
        return
    print_metrics("ranker evaluation", ev, f"{model}/eval.json or --json")
    if markdown:
        # plain print: the tables are meant to be pasted, without rich's wrapping
        print(markdown_table(ev))
        print()
        print(markdown_segments(ev))
    console.print(f"eval.json written to {model}")


@app.command("retrieval")
def eval_retrieval_cmd(
    logs: Logs, model: CheckpointDir, test: TestFile = "", max_users: MaxUsers = 0, as_json: AsJson = False
) -> None:
    """recall@100/@1000 of held-out positives vs popularity, random and (worlds) the oracle's top-k;
    with --test, leave-one-out HR@K / NDCG@K / MRR vs popularity and random."""
    from phoenix.retrieval.evaluate import evaluate_retrieval
    from world.retrieval_oracle import retrieval_oracle

    if test:
        from phoenix.leave_one_out import evaluate_loo

        try:
            with console.status("leave-one-out ranking of every test row…"):
                res = evaluate_loo(logs, test, model, None, max_users=max_users)
        except (FileNotFoundError, ValueError) as e:
            fail(e)
        _print_loo("retrieval leave-one-out evaluation", res, as_json)
        return

    with console.status("evaluating retrieval…"):
        metrics = evaluate_retrieval(logs, model, oracle=retrieval_oracle(logs))
    if as_json:
        print_json(metrics)
        return
    print_metrics("retrieval evaluation", metrics, "--json")
