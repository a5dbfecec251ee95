"""Evaluation: every protocol for the starting backbone and the trained one; a table of deltas and a plot."""


rule evaluate:
    """Score one model with one protocol (linear, clustering, hummingbird, videoseg, and the cross-view
    hummingbird_xview and clustering_xview on the synthetic faces)."""
    input:
        model=lambda wc: MODELS[wc.model],
        data=SYNTH_DIR if CFG.dataset.kind == "synthetic" else [],
        code=code_inputs("scripts/evaluate.py"),
    output:
        f"{EVAL_DIR}/{{model}}/{{protocol}}/{{dataset}}.json",
    log:
        f"{LOGS}/evaluate/{{model}}/{{protocol}}_{{dataset}}.log",
    wildcard_constraints:
        protocol="|".join(PROTOCOLS_ON),
        model="|".join(MODELS),
        dataset="[a-z_]+",
    conda:
        "../envs/train.yaml"
    resources:
        # evaluate.device: cuda = 1, cpu = 0, auto = 1 when train.gpus > 0.
        gpu=evaluate_gpus(CFG),
    params:
        # The shared evaluate keys and this protocol's own settings (a cross-view protocol's also those of the
        # protocol it extends): editing another protocol never reruns it.
        evaluate_cfg=lambda wc: evaluate_job(CFG.evaluate, wc.protocol).as_dict(),
        image_root=EVAL_IMAGE_ROOT,
        video_root=EVAL_VIDEO_ROOT,
        cache=f"{EVAL_DIR}/cache",
    script:
        "../scripts/evaluate.py"


rule eval_table:
    """Gather every result into table.csv / table.parquet with deltas against the starting backbone, and a plot."""
    input:
        results=EVAL_RESULTS,
        code=code_inputs("scripts/eval_table.py"),
    output:
        table=report(
            f"{EVAL_DIR}/table.csv",
            caption="../report/eval_table.rst",
            category="3 Evaluation",
            subcategory="tables",
        ),
        summary=report(
            f"{EVAL_DIR}/summary.csv",
            caption="../report/eval_summary.rst",
            category="3 Evaluation",
            subcategory="tables",
        ),
        plot=report(
            f"{EVAL_DIR}/deltas.png",
            caption="../report/deltas.rst",
            category="3 Evaluation",
            subcategory="figures",
        ),
        # aggregate() draws the examples from the Hummingbird predictions, so only when that protocol runs.
        examples=(
            report(
                f"{EVAL_DIR}/examples.png",
                caption="../report/examples.rst",
                category="3 Evaluation",
                subcategory="figures",
            )
            if CFG.evaluate.hummingbird.enabled
            else []
        ),
    log:
        f"{LOGS}/eval_table.log",
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/eval_table.py"
