"""Stage 2: MoSiC training on the track cache with torchrun (DDP over GPUs, gloo processes on CPU)."""


rule train:
    """Fine-tune the backbone; writes checkpoints, the final checkpoint record, the exported backbone and metrics."""
    input:
        shards=SHARDS,
        init=PRETRAIN_BACKBONE if CFG.train.init == "pretrain" else [],
        script=os.path.join(workflow.basedir, "scripts", "train.py"),
        code=code_inputs("scripts/train.py", "mosic/gpu_slots.py", "mosic/launch.py"),
    output:
        final=f"{TRAIN_ROOT}/{{variant}}_s{{seed}}/final.json",
        backbone=f"{TRAIN_ROOT}/{{variant}}_s{{seed}}/backbone.safetensors",
        initial=f"{TRAIN_ROOT}/{{variant}}_s{{seed}}/initial_backbone.safetensors",
        metrics=f"{TRAIN_ROOT}/{{variant}}_s{{seed}}/metrics.csv",
    log:
        f"{LOGS}/train/{{variant}}_s{{seed}}.log",
    wildcard_constraints:
        variant="|".join(VARIANTS),
        seed=r"\d+",
    conda:
        "../envs/train.yaml"
    threads: max(1, CFG.train.cpu_processes)
    resources:
        gpu=CFG.train.gpus,
        # More than one node: see profiles/slurm/profile.yaml (mpi="srun", tasks, tasks_per_gpu=0); mosic.launch
        # then starts one torchrun per node with a c10d rendezvous.
        nodes=1,
    params:
        # The train section only (the run's variant and seed are its wildcards): adding a seed or a control never
        # reruns the others.
        train_cfg=json.dumps(TRAIN_SECTION),
        out=lambda wc, output: os.path.dirname(output.final),
        # Snakemake clamps resources.gpu to --resources gpu=...; use the clamped count, or gloo ranks on CPU.
        nproc=lambda wc, resources: resources.gpu if resources.gpu > 0 else CFG.train.cpu_processes,
    shell:
        "OMP_NUM_THREADS={threads} python -m mosic.gpu_slots {resources.gpu} -- "
        "python -m mosic.launch --nproc {params.nproc} --nodes {resources.nodes} -- "
        "{input.script} --variant {wildcards.variant} --seed {wildcards.seed} --train-config {params.train_cfg:q} "
        "--out {params.out} {input.shards} > {log} 2>&1"


rule pretrain:
    """The demo's image-pretrained start (train.init: pretrain): the backbone learns the classes from one face."""
    input:
        data=SYNTH_DIR,
        code=code_inputs("scripts/pretrain.py"),
    output:
        PRETRAIN_BACKBONE,
    log:
        f"{LOGS}/pretrain.log",
    conda:
        "../envs/train.yaml"
    params:
        # Only what the start depends on: editing other train keys never reruns it.
        pretrain_cfg=section("pretrain"),
        model=CFG.train.model,
        input_size=CFG.train.input_size,
        faces=CFG.synthetic.faces,
        split=None,
    script:
        "../scripts/pretrain.py"


rule labelled:
    """The labelled reference (runs.labelled_steps): the start trained further with class labels on images whose
    objects show every face; evaluated beside the runs, it shows how far each protocol moves when told outright."""
    input:
        data=SYNTH_DIR,
        init=PRETRAIN_BACKBONE,
        code=code_inputs("scripts/pretrain.py"),
    output:
        LABELLED_BACKBONE,
    log:
        f"{LOGS}/labelled.log",
    conda:
        "../envs/train.yaml"
    params:
        pretrain_cfg={**section("pretrain"), "steps": CFG.runs.labelled_steps},
        model=CFG.train.model,
        input_size=CFG.train.input_size,
        faces=CFG.synthetic.faces,
        # split train: each object shows a random face, so the labels cover every face of a class
        split="train",
    script:
        "../scripts/pretrain.py"
