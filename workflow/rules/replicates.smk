# The rows of params.yaml `replicated_tables` trained again with every seed of `replicate_seeds`, so that each
# such table has a variant, reports/<dataset>/<table>_seeds.csv, with each row's mean and standard deviation over
# `seed` (the main runs) and these. A replicate runs the main DAG's entry points with --set seed=<seed>, from an
# ImageNet model of that seed (its decoder and head are drawn from the seed), on the same dataset and
# pseudo-segments; everything it makes is under data/<dataset>/seeds/<seed>/ and reports/<dataset>/seeds/<seed>/.
# A row that trains nothing (Table 3's first) is not replicated: its variant row shows one seed.
REPLICATE_SEEDS = [str(seed) for seed in config["replicate_seeds"]]
REPLICATED_TABLES = config["replicated_tables"]
SEEDS_TABLES = [f"{table}_seeds" for table in REPLICATED_TABLES]
REPLICATE = f"{DATA}/seeds/{{seed}}"
REPLICATED_MODELS = list(dict.fromkeys(model for models in REPLICATED_TABLES.values() for model in models))
REPLICATED_KMEANS = [m for m in REPLICATED_MODELS if m in config["evaluation"]["kmeans_models"]]
REPLICATED_SOFTMAX = [m for m in REPLICATED_MODELS if m in config["evaluation"]["softmax_models"]]
if len(REPLICATED_KMEANS) + len(REPLICATED_SOFTMAX) != len(REPLICATED_MODELS):
    raise ValueError(f"params.yaml replicated_tables: replicated rows must be trained SegSort or softmax models "
                     f"(evaluation.kmeans_models, softmax_models), not "
                     f"{sorted(set(REPLICATED_MODELS) - set(REPLICATED_KMEANS) - set(REPLICATED_SOFTMAX))}")
REPLICATED_RUNS = training_chain(REPLICATED_MODELS)
REPLICATED_NETWORKS = sorted({run_of(run)[1]["init"].removeprefix("imagenet_") for run in REPLICATED_RUNS
                              if run_of(run)[1]["init"].startswith("imagenet_")})
REPLICATE_TRAIN_PARAMS = tuple(key for key in TRAIN_PARAMS if key != "seed")  # the seed is in the path


rule replicate_imagenet_model:
    output:
        f"{REPLICATE}/models/imagenet_{{network}}/model.pt",
    wildcard_constraints:
        seed=one_of(REPLICATE_SEEDS),
        network=one_of(REPLICATED_NETWORKS),
    params:
        tracked=lambda wildcards: params_of("dataset", *network_params(wildcards.network), f"{PRESET}.embedding_dim",
                                            f"{PRESET}.imagenet_backbones"),
    log:
        f"{REPLICATE}/logs/imagenet_model/{{network}}.log",
    shell:
        "python stages/imagenet_model.py --network {wildcards.network} --set seed={wildcards.seed} --out {output} --log {log}"


# One rule per replicated run (named replicate_<run>, as its DVC stage is): each starts from its own init.
for run in REPLICATED_RUNS:
    group, definition = run_of(run)
    unsupervised = group == "unsupervised_runs"

    rule:
        name:
            f"replicate_{run}"
        input:
            init=f"{REPLICATE}/models/{definition['init']}/model.pt",
            dataset=f"{DATA}/dataset",
            segments=[f"{DATA}/pseudo_segments"] if unsupervised else [],
        output:
            model=f"{REPLICATE}/models/{run}/model.pt",
            train_log=f"{REPLICATE}/models/{run}/train_log.csv",
            tensorboard=directory(f"{REPLICATE}/logs/tensorboard/{run}"),
        wildcard_constraints:
            seed=one_of(REPLICATE_SEEDS),
        params:
            # Snakemake formats the shell command when the job runs, after the loop: it reads the run from
            # params, never from the loop variables (they hold the last run by then)
            run=run,
            segments_option="--segments" if unsupervised else "",
            tracked=params_of(*REPLICATE_TRAIN_PARAMS, f"{group}.{run}",
                              *network_params(definition.get("stands_in_for", definition["network"])),
                              f"{PRESET}.schedules.{definition['schedule']}"),
        threads: config["threads"]
        log:
            f"{REPLICATE}/logs/train/{run}.log",
        shell:
            config["train_launcher"] + " stages/train.py -- --run {params.run} --set seed={wildcards.seed} --init {input.init}"
            " --dataset-root {input.dataset} {params.segments_option} {input.segments}"
            " --model-out {output.model} --train-log {output.train_log} --tensorboard {output.tensorboard} --log {log}"


rule replicate_metrics:
    input:
        model=f"{REPLICATE}/models/{{model}}/model.pt",
        dataset=f"{DATA}/dataset",
    output:
        bank=f"{REPLICATE}/banks/{{model}}.h5",
        metrics=f"{REPORTS}/seeds/{{seed}}/metrics/{{model}}.json",
    wildcard_constraints:
        seed=one_of(REPLICATE_SEEDS),
        model=one_of(REPLICATED_KMEANS),
    params:
        tracked=params_of(*EVAL_PARAMS),
    threads: config["threads"]
    log:
        bank=f"{REPLICATE}/logs/prototype_bank/{{model}}.log",
        metrics=f"{REPLICATE}/logs/metrics/{{model}}.log",
    shell:
        "python stages/build_bank.py --model {input.model} --dataset-root {input.dataset} --out {output.bank}"
        " --log {log.bank} && python stages/evaluate.py --model {input.model} --bank {output.bank}"
        " --dataset-root {input.dataset} --out {output.metrics} --log {log.metrics}"


rule replicate_metrics_softmax:
    input:
        model=f"{REPLICATE}/models/{{model}}/model.pt",
        dataset=f"{DATA}/dataset",
    output:
        f"{REPORTS}/seeds/{{seed}}/metrics/{{model}}.json",
    wildcard_constraints:
        seed=one_of(REPLICATE_SEEDS),
        model=one_of(REPLICATED_SOFTMAX),
    params:
        tracked=params_of(*SOFTMAX_EVAL_PARAMS),
    threads: config["threads"]
    log:
        f"{REPLICATE}/logs/metrics/{{model}}.log",
    shell:
        "python stages/evaluate.py --model {input.model} --dataset-root {input.dataset} --out {output} --log {log}"


# One rule per replicated table (named <table>_seeds, as its DVC stage is).
for table, models in REPLICATED_TABLES.items():

    rule:
        name:
            f"{table}_seeds"
        input:
            rows=[f"{REPORTS}/metrics/{model}.json" for model in dict.fromkeys(row["model"] for row in
                                                                            config["tables"][table])],
            replicates=[f"{REPORTS}/seeds/{seed}/metrics/{model}.json" for seed in REPLICATE_SEEDS
                        for model in models],
            paper=PAPER_TABLES,
        output:
            f"{REPORTS}/{table}_seeds.csv",
        params:
            table=table,  # the shell command runs after the loop: it must not read the loop variables
            tracked=params_of(f"tables.{table}", "replicate_seeds", f"replicated_tables.{table}"),
        log:
            f"{DATA}/logs/{table}_seeds.log",
        shell:
            "python stages/table.py --table {params.table} --metrics {input.rows} --replicate-metrics {input.replicates}"
            " --paper {input.paper} --out {output} --log {log}"
