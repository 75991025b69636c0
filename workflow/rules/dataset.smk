rule dataset:
    input:
        [OWN_DATASET["root"]] if OWN_DATASET else [],  # your own folder: changed images remake the dataset
    output:
        directory(f"{DATA}/dataset"),
    params:
        tracked=params_of("dataset", "seed", f"datasets.{config['dataset']}" if OWN_DATASET else "tiny"),
    log:
        f"{DATA}/logs/dataset.log",
    shell:
        "python stages/make_dataset.py --out {output} --log {log}"
