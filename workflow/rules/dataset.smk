rule dataset:
    output:
        directory(f"{DATA}/dataset"),
    params:
        tracked=params_of("dataset", "seed", "tiny"),
    log:
        f"{DATA}/logs/dataset.log",
    shell:
        "python stages/make_dataset.py --out {output} --log {log}"
